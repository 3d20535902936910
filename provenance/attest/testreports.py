"""Test reports -> sorted test ids and outcomes: JUnit XML, TAP, and our results.json.

The parsers follow exactly the rules of the in-sandbox normaliser
nix/normalise-results.awk (the tests run both on every recorded report in
tests/fixtures/reports/ and compare bytes), so what a signer reads from a raw report is
what the sandbox would have written. A report that cannot be read completely raises
AttestationError: truncated XML, a plan that does not match the results, a suite that
mentions failures no test case carries. Rules: docs/test-results.md.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # DTDs and entities are refused before parsing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from provenance.errors import AttestationError
from provenance.formats.hashing import sha256_hex

RESULTS_SCHEMA = "provenance-test-results/v1"
RESULTS_FILE = "results.json"
FORMATS = ("junit", "tap", "summary")
PASSED, WARNED, FAILED = "PASSED", "WARNED", "FAILED"
MAX_REPORT_BYTES = 64 << 20  # a report larger than this is refused, not parsed

_WS = re.compile(r"[ \t\r\n]+")
_CTRL = re.compile(r"[\x01-\x1f]")


@dataclass(frozen=True)
class TestCase:
    id: str
    outcome: str  # passed | failed | skipped


@dataclass(frozen=True)
class TestResults:
    format: str  # junit | tap | summary
    tests: tuple[TestCase, ...]  # sorted; empty for a counts-only summary
    passed: int
    failed: int
    skipped: int
    source: str = ""  # where they were read: a store path, or "build log"
    digest: str = ""  # hex SHA-256 of the bytes they were read from

    @property
    def result(self) -> str:
        """FAILED if any test failed; WARNED if some were skipped or none passed."""
        if self.failed:
            return FAILED
        if self.skipped or not self.passed:
            return WARNED
        return PASSED

    def summary_line(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return f"{self.passed} passed, {self.failed} failed{skipped}"

    def ids(self, outcome: str) -> list[str]:
        return [t.id for t in self.tests if t.outcome == outcome]

    def render(self) -> bytes:
        """The normalised results.json, byte for byte what mkTestCheck writes."""
        rows = ",\n".join(
            '{"id":' + json.dumps(t.id, ensure_ascii=False) + ',"outcome":"' + t.outcome + '"}'
            for t in self.tests
        )
        head = (
            f'{{"schema":"{RESULTS_SCHEMA}","format":"{self.format}",'
            f'"counts":{{"passed":{self.passed},"failed":{self.failed},"skipped":{self.skipped}}},'
            '"tests":[\n'
        )
        return (head + (rows + "\n" if rows else "") + "]}\n").encode()

    def as_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "format": self.format,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "source": self.source,
        }


def clean_id(s: str) -> str:
    """Whitespace runs -> one space, other control characters dropped, ends trimmed."""
    s = _CTRL.sub("", _WS.sub(" ", s))
    s = s.removeprefix(" ")
    return s.removesuffix(" ")


def _sorted(tests: Iterable[TestCase]) -> tuple[TestCase, ...]:
    # Same order as `LC_ALL=C sort` on "id<TAB>outcome" lines in the sandbox.
    return tuple(sorted(tests, key=lambda t: (t.id.encode(), t.outcome)))


def from_cases(
    fmt: str, cases: Iterable[TestCase], source: str = "", digest: str = ""
) -> TestResults:
    tests = _sorted(cases)
    n = {o: sum(1 for t in tests if t.outcome == o) for o in ("passed", "failed", "skipped")}
    if not tests:
        msg = f"the {fmt} report lists no tests"
        raise AttestationError(msg)
    return TestResults(fmt, tests, n["passed"], n["failed"], n["skipped"], source, digest)


def check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_REPORT_BYTES:
        msg = f"{what} is {len(data)} bytes, over the {MAX_REPORT_BYTES} byte limit"
        raise AttestationError(msg)


# -- JUnit XML -------------------------------------------------------------------------

# What makes an .xml file a JUnit report: one of its elements, namespace prefix or not.
JUNIT_HINT = re.compile(rb"<([A-Za-z_][A-Za-z0-9_.-]*:)?(testsuites|testsuite|testcase)[ \t\r\n/>]")
_COUNT = re.compile(r"[0-9]+")


def _local(tag: object) -> str:
    # "{urn:x}testcase" (a namespace, default or prefixed) -> "testcase"
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _mentions_failures(el: ET.Element) -> bool:
    return any(
        # "> 0" without int(): a count of 5000 digits is over Python's int-from-text limit
        _COUNT.fullmatch(v := el.get(a, "")) is not None and v.strip("0") != ""
        for a in ("failures", "errors")
    )


def parse_junit(data: bytes) -> list[TestCase]:
    """One case per <testcase>; see docs/test-results.md for ids and outcomes."""
    check_size(data, "the JUnit report")
    # Entity expansion (billion laughs) and external entities need a DTD: refuse any.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        msg = "the JUnit report declares a DTD or entities; refusing to parse it"
        raise AttestationError(msg)
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD (checked above), size bounded
    except (ET.ParseError, LookupError) as e:  # LookupError: an encoding Python lacks
        msg = f"the JUnit report is not well-formed XML ({e}): truncated or corrupt"
        raise AttestationError(msg) from None
    cases: list[TestCase] = []

    def walk(el: ET.Element) -> int:
        """Collect the cases under `el`; return how many of them carry a failure/error."""
        tag = _local(el.tag)
        if tag == "testcase":
            inner = {_local(c.tag) for c in el.iter() if c is not el}
            name, cls = el.get("name", ""), el.get("classname", "")
            outcome = "passed"
            if "skipped" in inner:
                outcome = "skipped"
            elif inner & {"failure", "error"}:
                outcome = "failed"
            cases.append(
                TestCase(clean_id(name if cls in ("", name) else f"{cls}::{name}"), outcome)
            )
            return 1 if inner & {"failure", "error"} else 0
        if tag in ("failure", "error"):
            msg = (
                f"the JUnit report has a <{tag}> outside any <testcase>: a failure it cannot count"
            )
            raise AttestationError(msg)
        failing = sum(walk(c) for c in el)
        if tag in ("testsuite", "testsuites") and _mentions_failures(el) and not failing:
            suite = el.get("name", "")
            msg = (
                f"the JUnit report's <{tag}{' ' + repr(suite) if suite else ''}> counts "
                f"failures={el.get('failures', '0')} errors={el.get('errors', '0')} "
                "but none of its test cases failed: a failure it cannot count"
            )
            raise AttestationError(msg)
        return failing

    try:
        walk(root)
    except RecursionError:  # suites within suites thousands deep: no runner writes that
        msg = "the JUnit report nests too deeply to be read"
        raise AttestationError(msg) from None
    return cases


# -- TAP -------------------------------------------------------------------------------

_TAP_RESULT = re.compile(r"^(not )?ok([ \t]|$)")
_TAP_PLAN = re.compile(r"^1\.\.([0-9]+)[ \t]*(#.*)?$")
# Explicit classes, not re.IGNORECASE: Unicode case folding matches more than awk does.
_TAP_DIRECTIVE = re.compile(r"[ \t]#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])")
_TAP_LEAD_DIRECTIVE = re.compile(r"^#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])")
_YAML_START = re.compile(r"^ *---[ \t]*$")
_YAML_END = re.compile(r"^ *\.\.\.[ \t]*$")


class TapStream:
    """One TAP 13/14 stream, fed line by line: leaves, top-level plan and results.

    Subtests (4-space indents) are named by path; a result that closes subtests is a
    parent, not a test. `top` counts the top-level results (parents included), which is
    what the top-level plan `1..N` announces.
    """

    def __init__(self) -> None:
        self.cases: list[TestCase] = []
        self.plans: list[int] = []  # top-level plans, in order
        self.top = 0
        self.top_failed = 0  # top-level "not ok" without TODO/SKIP
        self.bailed = False
        self._in_yaml = False
        self._names: dict[int, str] = {}
        self._seen: dict[int, bool] = {}

    def feed(self, line: str) -> None:
        if self._in_yaml:
            if _YAML_END.match(line):
                self._in_yaml = False
            return
        if _YAML_START.match(line):
            self._in_yaml = True
            return
        indent = len(line) - len(line.lstrip(" "))
        depth = indent // 4
        rest = line[indent:]
        if rest.startswith("# Subtest: "):
            self._names[depth] = clean_id(rest[11:])
            return
        if indent == 0:
            if m := _TAP_PLAN.match(rest):
                self.plans.append(int(m.group(1)))
                return
            if rest.startswith("Bail out!"):
                self.bailed = True
                return
        m = _TAP_RESULT.match(rest)
        if not m:
            return
        ok = m.group(1) is None
        rest = re.sub(r"^(not )?ok[ \t]*", "", rest, count=1)
        num_m = re.match(r"^[0-9]+", rest)
        num = num_m.group(0) if num_m else ""
        rest = rest[len(num) :]
        directive = ""
        if d := _TAP_DIRECTIVE.search(rest):
            directive, rest = d.group(0).lower(), rest[: d.start()]
        elif d := _TAP_LEAD_DIRECTIVE.match(rest):
            directive, rest = d.group(0).lower(), ""
        rest = re.sub(r"^[ \t]*-[ \t]*", "", rest, count=1).lstrip(" \t")
        desc = clean_id(rest) or num
        excused = "skip" in directive or "todo" in directive
        if indent == 0:
            self.top += 1
            self.top_failed += 0 if ok or excused else 1
        parent = self._seen.get(depth + 1, False)
        for deeper in [k for k in self._seen if k > depth]:
            del self._seen[deeper]
        self._seen[depth] = True
        if parent:
            return  # it closes subtests: the leaves are the tests
        test_id = "".join(f"{self._names.get(i, '?')} > " for i in range(depth)) + desc
        outcome = "skipped" if excused else "passed" if ok else "failed"
        self.cases.append(TestCase(test_id, outcome))

    def problem(self) -> str | None:
        """Why the stream is not a complete run, or None: its plan must match its results."""
        if self.bailed:
            return "it bailed out (Bail out!): a failure it cannot count"
        if not self.plans:
            return "it has no plan (1..N): the run may have stopped early"
        if len(self.plans) > 1:
            return f"it has {len(self.plans)} top-level plans"
        if self.plans[0] != self.top:
            return f"its plan 1..{self.plans[0]} announces {self.plans[0]} tests but it has {self.top} results"
        return None


def parse_tap(text: str) -> list[TestCase]:
    """Leaf results of a complete TAP 13/14 stream (one top-level plan that matches)."""
    stream = TapStream()
    try:
        for raw in text.split("\n"):
            stream.feed(raw.removesuffix("\r"))
    except ValueError:  # int() of a plan over 4300 digits long
        msg = "the TAP report holds a number too long to be a test count"
        raise AttestationError(msg) from None
    if why := stream.problem():
        msg = f"the TAP report is incomplete: {why}"
        raise AttestationError(msg)
    return stream.cases


# -- results.json ----------------------------------------------------------------------


def parse_results_json(data: bytes, source: str = "") -> TestResults:
    """Read the normalised results.json that mkTestCheck wrote; strict about its shape."""
    check_size(data, RESULTS_FILE)
    try:
        obj = json.loads(data)
        if obj.get("schema") != RESULTS_SCHEMA or obj.get("format") not in FORMATS:
            raise ValueError
        counts = obj["counts"]
        tests = tuple(TestCase(str(t["id"]), str(t["outcome"])) for t in obj["tests"])
        if any(t.outcome not in ("passed", "failed", "skipped") for t in tests):
            raise ValueError
        "".join(t.id for t in tests).encode()  # a lone surrogate ("\ud800") cannot be signed
        passed, failed, skipped = (int(counts[k]) for k in ("passed", "failed", "skipped"))
        if min(passed, failed, skipped) < 0:
            raise ValueError
        if tests and [passed, failed, skipped] != [
            sum(1 for t in tests if t.outcome == o) for o in ("passed", "failed", "skipped")
        ]:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
        msg = f"{source or RESULTS_FILE} is not a {RESULTS_SCHEMA} document"
        raise AttestationError(msg) from None
    return TestResults(str(obj["format"]), tests, passed, failed, skipped, source, sha256_hex(data))


def merge(parts: list[TestResults], fmt: str) -> TestResults:
    """Several reports of one format as one result (each test once per report)."""
    if len(parts) == 1:
        return parts[0]
    merged = from_cases(fmt, [t for r in parts for t in r.tests])
    digest = sha256_hex("\n".join(f"{r.source} {r.digest}" for r in parts).encode())
    return TestResults(
        fmt,
        merged.tests,
        merged.passed,
        merged.failed,
        merged.skipped,
        ", ".join(r.source for r in parts),
        digest,
    )
