"""What the tests of a check were: parse its results and build the test-result statement.

A check built with `mkTestCheck` (nix/lib.nix) leaves `$out/results.json`: sorted test
ids and outcomes, normalised in the sandbox by nix/normalise-results.awk. Other checks
leave a JUnit XML report (pytest, go test via gotestsum, cargo nextest, jest, node), a
TAP stream, or only a `N passed, N failed` line. The parsers here follow exactly the
rules of the awk normaliser (the tests run both on every recorded report in
tests/fixtures/reports/ and compare), so the results a signer reads from a raw report
are the results the sandbox would have written. Rules and verdicts: docs/test-results.md.

Test result predicate v0.1:
https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # DTDs and entities are refused before parsing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance import dsse
from provenance.errors import AttestationError
from provenance.hashing import sha256_hex
from provenance.intoto import ResourceDescriptor, Statement, TestResult
from provenance.keys import Signer
from provenance.nix import PathInfo
from provenance.progress import Reporter
from provenance.uris import TEST_RESULT_V01

RESULTS_SCHEMA = "provenance-test-results/v1"
RESULTS_FILE = "results.json"
FORMATS = ("junit", "tap", "summary")
PASSED, WARNED, FAILED = "PASSED", "WARNED", "FAILED"
MAX_REPORT_BYTES = 64 << 20  # a report larger than this is refused, not parsed
_MAX_FILES = 2000  # files looked at per output when searching for reports

_WS = re.compile(r"[ \t\r\n]+")
_CTRL = re.compile(r"[\x01-\x1f]")
_ENTITY = re.compile(r"&(#[xX][0-9A-Fa-f]+|#[0-9]+|lt|gt|quot|apos|amp);")


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


def _from_cases(
    fmt: str, cases: Iterable[TestCase], source: str = "", digest: str = ""
) -> TestResults:
    tests = _sorted(cases)
    n = {o: sum(1 for t in tests if t.outcome == o) for o in ("passed", "failed", "skipped")}
    if not tests:
        msg = f"the {fmt} report lists no tests"
        raise AttestationError(msg)
    return TestResults(fmt, tests, n["passed"], n["failed"], n["skipped"], source, digest)


# -- JUnit XML -------------------------------------------------------------------------


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_REPORT_BYTES:
        msg = f"{what} is {len(data)} bytes, over the {MAX_REPORT_BYTES} byte limit"
        raise AttestationError(msg)


def parse_junit(data: bytes) -> list[TestCase]:
    """One case per <testcase>; see docs/test-results.md for ids and outcomes."""
    _check_size(data, "the JUnit report")
    # Entity expansion (billion laughs) and external entities need a DTD: refuse any.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        msg = "the JUnit report declares a DTD or entities; refusing to parse it"
        raise AttestationError(msg)
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD (checked above), size bounded
    except ET.ParseError as e:
        msg = f"the JUnit report is not well-formed XML ({e})"
        raise AttestationError(msg) from None
    cases: list[TestCase] = []
    for tc in root.iter("testcase"):
        inner = {el.tag for el in tc.iter() if el is not tc}
        name = tc.get("name", "")
        cls = tc.get("classname", "")
        outcome = "passed"
        if "skipped" in inner:
            outcome = "skipped"
        elif inner & {"failure", "error"}:
            outcome = "failed"
        cases.append(TestCase(clean_id(name if cls in ("", name) else f"{cls}::{name}"), outcome))
    return cases


# -- TAP -------------------------------------------------------------------------------

_TAP_RESULT = re.compile(r"^(not )?ok([ \t]|$)")
# Explicit classes, not re.IGNORECASE: Unicode case folding matches more than awk does.
_TAP_DIRECTIVE = re.compile(r"[ \t]#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])")
_TAP_LEAD_DIRECTIVE = re.compile(r"^#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])")


def parse_tap(text: str) -> list[TestCase]:
    """Leaf results of a TAP 13/14 stream; subtests (4-space indents) are named by path."""
    cases: list[TestCase] = []
    in_yaml = False
    names: dict[int, str] = {}
    seen: dict[int, bool] = {}
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if in_yaml:
            if re.match(r"^ *\.\.\.[ \t]*$", line):
                in_yaml = False
            continue
        if re.match(r"^ *---[ \t]*$", line):
            in_yaml = True
            continue
        indent = len(line) - len(line.lstrip(" "))
        depth = indent // 4
        rest = line[indent:]
        if rest.startswith("# Subtest: "):
            names[depth] = clean_id(rest[11:])
            continue
        m = _TAP_RESULT.match(rest)
        if not m:
            continue
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
        parent = seen.get(depth + 1, False)
        for deeper in [k for k in seen if k > depth]:
            del seen[deeper]
        seen[depth] = True
        if parent:
            continue  # it closes subtests: the leaves are the tests
        test_id = "".join(f"{names.get(i, '?')} > " for i in range(depth)) + desc
        outcome = "passed" if ok else "failed"
        if "skip" in directive or "todo" in directive:
            outcome = "skipped"
        cases.append(TestCase(test_id, outcome))
    return cases


# -- "N passed, N failed" --------------------------------------------------------------

_SUMMARY_HINT = re.compile(r"[0-9]+ (passed|failed)")
_SUMMARY_WORD = re.compile(r"([0-9]+) ([a-z]+)")


def parse_summary(text: str) -> tuple[int, int, int] | None:
    """(passed, failed, skipped) from the last summary line, or None when there is none."""
    found: tuple[int, int, int] | None = None
    for line in text.split("\n"):
        if not _SUMMARY_HINT.search(line):
            continue
        p = f = s = 0
        for count, word in _SUMMARY_WORD.findall(line):
            n = int(count)
            if word == "passed":
                p += n
            elif word in ("failed", "error", "errors"):
                f += n
            elif word in ("skipped", "ignored", "deselected"):
                s += n
        found = (p, f, s)
    return found


# -- dispatch --------------------------------------------------------------------------


def parse_report(data: bytes, fmt: str, source: str = "") -> TestResults:
    """Parse a raw report of `fmt` (junit | tap | summary) into sorted results."""
    _check_size(data, f"the {fmt} report")
    digest = sha256_hex(data)
    if fmt == "junit":
        return _from_cases(fmt, parse_junit(data), source, digest)
    text = data.decode(errors="replace")
    if fmt == "tap":
        return _from_cases(fmt, parse_tap(text), source, digest)
    if fmt == "summary":
        counts = parse_summary(text)
        if counts is None:
            msg = "no 'N passed, N failed' line found"
            raise AttestationError(msg)
        return TestResults(fmt, (), *counts, source=source, digest=digest)
    msg = f"unknown report format {fmt!r} (expected one of {', '.join(FORMATS)})"
    raise AttestationError(msg)


def parse_results_json(data: bytes, source: str = "") -> TestResults:
    """Read the normalised results.json that mkTestCheck wrote; strict about its shape."""
    _check_size(data, RESULTS_FILE)
    try:
        obj = json.loads(data)
        if obj.get("schema") != RESULTS_SCHEMA or obj.get("format") not in FORMATS:
            raise ValueError
        counts = obj["counts"]
        tests = tuple(TestCase(str(t["id"]), str(t["outcome"])) for t in obj["tests"])
        if any(t.outcome not in ("passed", "failed", "skipped") for t in tests):
            raise ValueError
        passed, failed, skipped = (int(counts[k]) for k in ("passed", "failed", "skipped"))
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = f"{source or RESULTS_FILE} is not a {RESULTS_SCHEMA} document"
        raise AttestationError(msg) from None
    return TestResults(str(obj["format"]), tests, passed, failed, skipped, source, sha256_hex(data))


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for p in sorted(root.rglob("*")):
        if len(found) >= _MAX_FILES:
            break
        if p.is_file() and not p.is_symlink():
            found.append(p)
    return found


def _merge(parts: list[TestResults], fmt: str) -> TestResults:
    if len(parts) == 1:
        return parts[0]
    merged = _from_cases(fmt, [t for r in parts for t in r.tests])
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


def find_results(outputs: Mapping[str, str], log: bytes | None) -> TestResults | None:
    """The results a built check left, or None when it left none we can read.

    Looks, in order of preference, for: results.json (mkTestCheck) at the top of an
    output; JUnit XML files (*.xml with <testcase>); TAP files (*.tap); the last
    `N passed, N failed` line of a text file in an output; the same line in the log.
    A report that is present but malformed raises AttestationError.
    """
    files = [f for _, path in sorted(outputs.items()) for f in _files(Path(path))]
    for f in files:
        if f.name == RESULTS_FILE and f.parent.as_posix() in outputs.values():
            return parse_results_json(f.read_bytes(), str(f))
    junit = [f for f in files if f.suffix == ".xml" and f.stat().st_size <= MAX_REPORT_BYTES]
    parts = [
        parse_report(data, "junit", str(f))
        for f in junit
        if b"<testcase" in (data := f.read_bytes())
    ]
    if parts:
        return _merge(parts, "junit")
    tap = [parse_report(f.read_bytes(), "tap", str(f)) for f in files if f.suffix == ".tap"]
    if tap:
        return _merge(tap, "tap")
    for f in files:
        if f.stat().st_size > MAX_REPORT_BYTES:
            continue
        data = f.read_bytes()
        if b"\0" not in data[:4096] and parse_summary(data.decode(errors="replace")) is not None:
            return parse_report(data, "summary", str(f))
    if log is not None and parse_summary(log.decode(errors="replace")) is not None:
        return parse_report(log, "summary", "build log")
    return None


# -- the statement ---------------------------------------------------------------------


def statement(
    results: TestResults,
    subjects: list[ResourceDescriptor],
    drv: ResourceDescriptor,
    source: ResourceDescriptor,
) -> Statement:
    """A test-result v0.1 statement about the same subjects as the provenance statement.

    configuration pins what was tested and how: the check's derivation (drvPath and the
    NAR SHA-256 of the .drv), the source (commit + NAR hash), and the results file.
    """
    listed = bool(results.tests)
    predicate = TestResult(
        result=results.result,
        configuration=[
            drv,
            source,
            ResourceDescriptor(
                name=results.source or "results",
                digest={"sha256": results.digest} if results.digest else None,
                media_type=_media_type(results),
                annotations={
                    "format": results.format,
                    "passed": results.passed,
                    "failed": results.failed,
                    "skipped": results.skipped,
                    "testIdsListed": listed,
                },
            ),
        ],
        passed_tests=results.ids("passed") if listed else None,
        warned_tests=results.ids("skipped") if listed else None,
        failed_tests=results.ids("failed") if listed else None,
    )
    return Statement(
        subject=subjects, predicate_type=TEST_RESULT_V01, predicate=predicate.as_predicate()
    )


def _media_type(results: TestResults) -> str:
    if results.source.endswith(RESULTS_FILE):
        return "application/json"
    return "application/xml" if results.format == "junit" else "text/plain"


def drv_descriptor(
    drv_path: str, drv_nar_sha256: str | None, check: str, attribute: str
) -> ResourceDescriptor:
    return ResourceDescriptor(
        name=drv_path,
        digest={"sha256": drv_nar_sha256} if drv_nar_sha256 else None,
        annotations={
            "nixStorePath": drv_path,
            "kind": "derivation",
            "check": check,
            "attribute": attribute,
        },
    )


def read_for_check(
    outputs: Mapping[str, tuple[str, str]], log: bytes | None, check: str, reporter: Reporter
) -> TestResults | None:
    """The results a built check left (in its outputs, else its log), or None.

    A report that cannot be read is a warning, not a refusal: the provenance statement
    stands on its own. `provenance build` reads results *before* signing anything, so a
    check whose results say FAILED is never attested (see attest.py).
    """
    try:
        results = find_results({o: p for o, (p, _) in outputs.items()}, log)
    except AttestationError as e:
        reporter.warn(f"{check}: test results not attested: {e.message}")
        return None
    except OSError as e:
        reporter.warn(f"{check}: test results not attested: cannot read the output ({e.strerror})")
        return None
    if results is not None:
        reporter.info(
            f"{check}: {results.summary_line()} [{results.result}, from {results.format}]"
        )
    return results


def sign_for_check(
    results: TestResults,
    subjects: list[ResourceDescriptor],
    attribute: str,
    check: str,
    drv_path: str,
    drv_info: PathInfo | None,
    source: ResourceDescriptor,
    signer: Signer,
) -> str:
    """The signed test-result line that goes beside the check's provenance statement."""
    drv = drv_descriptor(drv_path, drv_info.nar_hash if drv_info else None, check, attribute)
    stmt = statement(results, subjects, drv, source)
    return dsse.sign(stmt.dump_bytes(), [signer]).to_json()
