"""A test runner's own summary, found in a build log (or a declared text report).

Only whole lines of the shapes real runners print count, never a number inside a test
id: `tests.test_parse.ParserTests::test_7 passed` is no summary, nor is
`re-ran flaky: test_retry_2 passed` after pytest's own summary line. Recognised:
pytest (both forms), unittest (`Ran N tests` + `OK`/`FAILED (...)`), cargo
(`test result:` lines, one per test binary: summed), gotestsum (`DONE ...`), go test's
`FAIL` lines (a failure, not counted), jest (`Tests: ...`), node's test runner (the
`# tests`/`\u2139 tests` counters), TAP streams with a plan (bats, Perl), prove, bats'
pretty summary, and a plain `N passed, N failed` line alone on a line.

nix/normalise-results.awk implements the same rules for mkTestCheck's "summary"
format; the tests compare both on every recorded log. Rules: docs/test-results.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from provenance.attest.testreports import TapStream
from provenance.errors import AttestationError

# Counts of a kind the reports count the same way (JUnit/TAP leaves) can be compared
# with a report; node counts parent tests and prove only top-level ones: not exact.
INEXACT = ("node", "prove")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NUM_WORD = re.compile(r"([0-9]+) ([a-z]+(?: [a-z]+)*)")

_PYTEST = re.compile(r"^=+ (.+) in [0-9]+(\.[0-9]+)?s( \([0-9:]+\))? =+$")
_PYTEST_Q = re.compile(r"^(no tests ran|[0-9]+ [a-z].*) in [0-9]+(\.[0-9]+)?s( \([0-9:]+\))?$")
_PYTEST_WORDS = {
    "passed": "p", "xpassed": "p", "failed": "f", "error": "f", "errors": "f",
    "skipped": "s", "xfailed": "s", "deselected": "d",
}  # fmt: skip
_UNITTEST_RAN = re.compile(r"^Ran ([0-9]+) tests? in [0-9]+(\.[0-9]+)?s$")
_UNITTEST_VERDICT = re.compile(r"^(OK|FAILED|NO TESTS RAN)( \(([a-z =0-9,]*)\))?$")
_CARGO = re.compile(
    r"^test result: (ok|FAILED)\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored; "
    r"([0-9]+) measured; ([0-9]+) filtered out(; finished in [0-9.]+m?s)?$"
)
_GOTESTSUM = re.compile(
    r"^DONE( ([0-9]+) runs,)? ([0-9]+) tests(, ([0-9]+) skipped)?(, ([0-9]+) failures?)?"
    r"(, ([0-9]+) errors?)?( in ([0-9.]+s|unknown))?$"
)
_GO_FAIL = re.compile(r"^( *--- FAIL: |FAIL$|FAIL\t)")
_JEST = re.compile(r"^Tests: +(([0-9]+ [a-z]+, )*)([0-9]+) total$")
_JEST_SUITES = re.compile(r"^Test Suites: +([0-9]+) failed, ")
_NODE = re.compile(
    r"^(# |\u2139 )(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([0-9.]+)$"
)
_PROVE_FILE = re.compile(
    r"^[^ \t].* \(Wstat: [0-9]+( \([^)]*\))? Tests: [0-9]+ Failed: ([0-9]+)\)$"
)
_PROVE_FILES = re.compile(r"^Files=[0-9]+, Tests=([0-9]+), ")
_PROVE_RESULT = re.compile(r"^Result: (PASS|FAIL|NOTESTS)$")
_PROVE_HEADER = re.compile(r"^[^ \t#]+ \.\.+$")
_BATS = re.compile(
    r"^([0-9]+) tests?, ([0-9]+) failures?(, ([0-9]+) skipped)?(, ([0-9]+) timed out)?"
    r"(, ([0-9]+) not run)?( in [0-9]+ seconds)?$"
)
_PLAIN = re.compile(r"^[ \t]*([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$")
# What a line must start with to be, or to open, any shape below (prove's per-file line is
# found by its "(Wstat: "): a cheap filter that skips most lines of a log.
_MAYBE = re.compile(
    r"Ran |=|[ \t]*[0-9]|no tests ran|test result: |DONE |FAIL| *--- FAIL: |Tests: |"
    r"Test Suites: |Files=|Result: |TAP version |# Subtest: |Bail out!|ok|not ok|"
    r"# tests |\u2139 tests "
)
_TAP_VERSION = re.compile(r"^TAP version [0-9]+$")
_TAP_PLAN = re.compile(r"^1\.\.[0-9]+[ \t]*(#.*)?$")
# A TAP result that can open a stream; "ok  \tpkg\t0.1s" is go test's, a bare "ok" prove's.
_TAP_START = re.compile(r"^(not ok|ok)([ \t]|$)")
_GO_OK = re.compile(r"^ok  \t")


def _is_prove_header(line: str) -> bool:
    """prove's "t/basic.t .. " before a file's TAP (-v), not a TAP line itself."""
    return _PROVE_HEADER.match(line) is not None and _TAP_START.match(line) is None


@dataclass(frozen=True)
class Tally:
    """One runner summary: the counts it gives, and whether the runner said it failed."""

    runner: str
    line: int  # 1-based line of the log where it ends
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    deselected: int = 0  # not run on request: pytest's deselected, cargo's filtered out
    failing: str = ""  # why the runner says it failed when it counts no failed test

    def describe(self) -> str:
        extra = f", {self.skipped} skipped" if self.skipped else ""
        extra += f", {self.deselected} deselected" if self.deselected else ""
        return (
            f"{self.runner} (line {self.line}): {self.passed} passed, {self.failed} failed{extra}"
        )


@dataclass
class LogSummary:
    tallies: list[Tally] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.tallies)

    @property
    def exact(self) -> bool:
        return all(t.runner not in INEXACT for t in self.tallies)

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.tallies)

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tallies)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tallies)

    @property
    def deselected(self) -> int:
        return sum(t.deselected for t in self.tallies)

    def failing(self) -> str:
        """Why the log says tests failed although no summary counts one ('' if not)."""
        return next(
            (f"{t.runner} (line {t.line}): {t.failing}" for t in self.tallies if t.failing), ""
        )

    def describe(self) -> str:
        return "; ".join(t.describe() for t in self.tallies)

    def counts(self) -> tuple[int, int, int]:
        """(passed, failed, skipped) of a counts-only result; deselected count as skipped.

        Raises AttestationError when there is no summary, or the log says the tests
        failed but nothing counts a failed test.
        """
        if not self.tallies:
            msg = "no test runner's summary line found"
            raise AttestationError(msg)
        if self.failed == 0 and (why := self.failing()):
            msg = f"the tests failed but no summary counts a failed test: {why}"
            raise AttestationError(msg)
        return self.passed, self.failed, self.skipped + self.deselected


class _Scanner:
    """Line-by-line state machine; nix/normalise-results.awk's summary() is its twin."""

    def __init__(self) -> None:
        self.tallies: list[Tally] = []
        self.dropped: set[int] = set()  # indices of tallies a later summary stands for
        self.n = 0
        self.prev = ""
        self.unittest_ran: int | None = None  # "Ran N tests" seen, verdict pending
        self.node: dict[str, int] | None = None
        self.prove_failed = 0
        self.prove_tests: int | None = None
        self.plain = 0
        self.plain_at = -1  # the plain tally of the line before, if any
        self.in_raw_report = False
        self.gotestsum_at = -1  # index of the last gotestsum tally
        self.tap: TapStream | None = None
        self.tap_owned = False  # the stream follows a prove -v file header
        self.prove_owned: list[int] = []  # tallies of such streams, dropped at prove's Result
        self.tap_closed_at = -1  # line of the last closing plan, and its tally's index
        self.tap_closed_tally = -1

    def add(
        self, runner: str, p: int = 0, f: int = 0, s: int = 0, d: int = 0, failing: str = ""
    ) -> None:
        if p < 0:
            p, failing = 0, failing or "its counts do not add up"
        self.tallies.append(Tally(runner, self.n, p, f, s, d, failing))

    # -- TAP streams ---------------------------------------------------------------

    def tap_close(self) -> None:
        stream, self.tap = self.tap, None
        if stream is None:
            return
        before = len(self.tallies)
        if not stream.plans and not stream.bailed:
            if stream.top_failed:
                self.add("tap", failing="'not ok' results without a plan")
        elif why := stream.problem():
            self.add("tap", failing=why)
        else:
            n = {
                o: sum(1 for c in stream.cases if c.outcome == o)
                for o in ("passed", "failed", "skipped")
            }
            self.add("tap", n["passed"], n["failed"], n["skipped"])
            self.tap_closed_at, self.tap_closed_tally = self.n, len(self.tallies) - 1
        if self.tap_owned and len(self.tallies) > before:
            self.prove_owned.append(len(self.tallies) - 1)  # prove's summary will count it

    def tap_line(self, line: str) -> None:
        col0 = not line.startswith((" ", "\t"))
        if col0 and _TAP_VERSION.match(line):
            self.tap_close()
            self.tap, self.tap_owned = TapStream(), _is_prove_header(self.prev)
            return
        plan = col0 and _TAP_PLAN.match(line) is not None
        starts = col0 and (
            plan
            or line.startswith(("# Subtest: ", "Bail out!"))
            or (_TAP_START.match(line) is not None and line != "ok" and not _GO_OK.match(line))
        )
        if self.tap is not None and plan and self.tap.plans:
            self.tap_close()  # a second top-level plan: a new stream
        if self.tap is None:
            if not starts:
                return
            self.tap, self.tap_owned = TapStream(), _is_prove_header(self.prev)
        stream = self.tap
        stream.feed(line)
        if plan and stream.top > 0:
            self.tap_close()  # a plan after the results ends the stream
        elif stream.plans and stream.top >= stream.plans[0]:
            self.tap_close()  # a plan before the results: done when they are all in

    # -- one line ------------------------------------------------------------------

    def line(self, raw: str) -> None:
        self.n += 1
        line = (_ANSI.sub("", raw) if "\x1b" in raw else raw).rstrip(" \t\r")
        if self.builder_line(line):
            return
        idle = self.tap is None and self.node is None and self.unittest_ran is None
        if idle and _MAYBE.match(line) is None and "(Wstat: " not in line:
            self.prev = line  # nothing pending and no shape can start here: most lines
            return
        if self.tap is not None and _is_prove_header(line):
            self.tap_close()  # prove -v: the next test file's stream begins
        self.tap_line(line)
        self.node_line(line)
        if self.unittest_ran is not None and line:
            self.unittest_verdict(line)
        if m := _UNITTEST_RAN.match(line):
            self.unittest_ran = int(m.group(1))
        elif m := _PYTEST.match(line) or _PYTEST_Q.match(line):
            self.pytest(m.group(1))
        elif m := _CARGO.match(line):
            p, f, s, d = (int(m.group(i)) for i in (2, 3, 4, 6))
            self.add("cargo", p, f, s, d, "test result: FAILED" if m.group(1) == "FAILED" else "")
        elif m := _GOTESTSUM.match(line):
            self.gotestsum(m)
        elif _GO_FAIL.match(line):
            self.add("go", failing=f"go test printed {line.split(':')[0].strip()!r}")
        elif m := _JEST.match(line):
            self.jest(m)
        elif m := _JEST_SUITES.match(line):
            if int(m.group(1)):
                self.add("jest", failing=f"{m.group(1)} test suite(s) failed")
        elif m := _PROVE_FILE.match(line):
            self.prove_failed += int(m.group(2))
        elif m := _PROVE_FILES.match(line):
            self.prove_tests = int(m.group(1))
        elif m := _PROVE_RESULT.match(line):
            self.prove(m.group(1))
        elif m := _BATS.match(line):
            n, f, s, t, nr = (int(m.group(i) or 0) for i in (1, 2, 4, 6, 8))
            self.add("bats", n - f - s - t - nr, f + t, s, failing=f"{nr} not run" if nr else "")
        elif m := _PLAIN.match(line):
            self.plain += 1
            self.add("plain", int(m.group(1)), int(m.group(2)), int(m.group(4) or 0))
            self.plain_at = len(self.tallies) - 1
        self.prev = line

    def builder_line(self, line: str) -> bool:
        """Skip what an older mkTestCheck builder printed itself (True: skip this line).

        It printed the raw report unprefixed between two marker lines, and its own count
        as a bare "N passed, N failed, N skipped" line just before its next message.
        """
        if self.in_raw_report:
            self.in_raw_report = line != "mkTestCheck: --- end of raw report ---"
            return True
        if line.startswith("mkTestCheck: --- raw "):
            self.in_raw_report = True
            return True
        if self.plain_at >= 0 and line.startswith("mkTestCheck: "):
            self.dropped.add(self.plain_at)  # the builder's count, not the runner's
            self.plain -= 1
        self.plain_at = -1
        return False

    def pytest(self, body: str) -> None:
        counts = {"p": 0, "f": 0, "s": 0, "d": 0}
        known = body == "no tests ran"
        if not known:
            for part in body.split(", "):
                m = _NUM_WORD.fullmatch(part)
                if m is None:
                    return  # not pytest's shape
                if (k := _PYTEST_WORDS.get(m.group(2))) is not None:
                    counts[k] += int(m.group(1))
                    known = True
        if known:
            self.add("pytest", counts["p"], counts["f"], counts["s"], counts["d"])

    def unittest_verdict(self, line: str) -> None:
        ran, self.unittest_ran = self.unittest_ran, None
        m = _UNITTEST_VERDICT.match(line)
        if ran is None or m is None:
            return
        kv: dict[str, int] = {}
        for part in (m.group(3) or "").split(", "):
            k, eq, v = part.partition("=")
            if eq and v.isdigit():
                kv[k] = kv.get(k, 0) + int(v)
        f = kv.get("failures", 0) + kv.get("errors", 0) + kv.get("unexpected successes", 0)
        s = kv.get("skipped", 0) + kv.get("expected failures", 0)
        failing = "FAILED" if m.group(1) == "FAILED" else ""
        self.add("unittest", ran - f - s, f, s, failing=failing)

    def gotestsum(self, m: re.Match[str]) -> None:
        runs = int(m.group(2) or 1)
        total, s, f, e = (int(m.group(i) or 0) for i in (3, 5, 7, 9))
        if runs > 1 and self.gotestsum_at >= 0:
            self.dropped.add(self.gotestsum_at)  # "DONE 2 runs, ..." counts earlier runs again
        self.gotestsum_at = len(self.tallies)
        self.add("gotestsum", total - s - f, f + e, s)

    def jest(self, m: re.Match[str]) -> None:
        parts = dict.fromkeys(("failed", "skipped", "todo", "passed"), 0)
        for count, word in _NUM_WORD.findall(m.group(1)):
            if word not in parts:
                return  # not jest's shape
            parts[word] += int(count)
        total = int(m.group(3))
        p, f, s = parts["passed"], parts["failed"], parts["skipped"] + parts["todo"]
        self.add(
            "jest",
            p,
            f,
            s,
            failing="" if p + f + s == total else f"its counts do not add up to {total}",
        )

    def node_line(self, line: str) -> None:
        m = _NODE.match(line)
        if m is None:
            self.node_done()
            return
        key, value = m.group(2), m.group(3)
        if key == "tests":
            self.node_done()
            self.node = {}
            if (
                line.startswith("#")
                and self.tap_closed_at == self.n - 1
                and self.tap_closed_tally >= 0
            ):
                # node's TAP reporter: these counters stand for the stream just closed.
                self.dropped.add(self.tap_closed_tally)
                self.tap_closed_tally = -1
        if self.node is not None and value.isdigit():
            self.node[key] = int(value)
        if key == "duration_ms":
            self.node_done()

    def node_done(self) -> None:
        c, self.node = self.node, None
        if c is None or "pass" not in c or "fail" not in c:
            return
        p, f = c["pass"], c["fail"] + c.get("cancelled", 0)
        s = c.get("skipped", 0) + c.get("todo", 0)
        ok = c.get("tests", -1) == p + f + s
        self.add("node", p, f, s, failing="" if ok else "its counts do not add up")

    def prove(self, verdict: str) -> None:
        total, failed = self.prove_tests, self.prove_failed
        self.prove_tests, self.prove_failed = None, 0
        self.tap_close()
        self.dropped.update(self.prove_owned)  # prove -v printed the streams it counts here
        self.prove_owned = []
        if total is None:
            self.add("prove", failing=f"Result: {verdict} without a Files=/Tests= line")
            return
        self.add(
            "prove", total - failed, failed, failing="Result: FAIL" if verdict == "FAIL" else ""
        )

    def finish(self) -> list[Tally]:
        self.node_done()
        self.tap_close()
        kept = [t for i, t in enumerate(self.tallies) if i not in self.dropped]
        if self.plain and len(kept) > 1:
            runners = sorted({t.runner for t in kept})
            msg = (
                f"the log holds {self.plain} plain 'N passed, N failed' line(s) beside "
                f"other summaries ({', '.join(runners)}): cannot tell which counts are the "
                "run's; print one summary or declare a report (testReport)"
            )
            raise AttestationError(msg)
        return kept


def scan(text: str) -> LogSummary:
    """Every runner summary in `text`, in order (see the module docstring)."""
    s = _Scanner()
    try:
        for raw in text.split("\n"):
            s.line(raw)
    except ValueError:  # int() of a count over 4300 digits long: no runner prints one
        msg = f"line {s.n} of the log holds a count too long to be a runner's"
        raise AttestationError(msg) from None
    return LogSummary(s.finish())
