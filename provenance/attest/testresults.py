"""What the tests of a check were: find its results, check them, build the statement.

Where results come from, in order (rules: docs/test-results.md):
1. the report the check declares (`testReport`, a derivation attribute; mkTestCheck
   declares its `results.json`);
2. else a well-known report at the top of an output: `results.json`, JUnit XML
   (`*.xml`), TAP (`*.tap`); two kinds side by side are ambiguous and refused;
3. else a test runner's own summary in the build log (provenance/runnerlogs.py).
Other files are never mined for numbers. In doubt, fail: a report that exists but
cannot be read completely, a log whose summary disagrees with the report, or a failure
nothing counts makes the check fail, naming the file. The parsers are in
provenance/testreports.py; they agree byte for byte with the in-sandbox normaliser.

Test result predicate v0.1:
https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from provenance.attest import runnerlogs
from provenance.attest.testreports import (
    FAILED,
    FORMATS,
    JUNIT_HINT,
    MAX_REPORT_BYTES,
    PASSED,
    RESULTS_FILE,
    RESULTS_SCHEMA,
    WARNED,
    TestCase,
    TestResults,
    check_size,
    clean_id,
    from_cases,
    merge,
    parse_junit,
    parse_results_json,
    parse_tap,
)
from provenance.doors.nix import PathInfo
from provenance.errors import AttestationError
from provenance.formats import dsse
from provenance.formats.hashing import sha256_hex
from provenance.formats.keys import Signer
from provenance.formats.plainjson import PlainStatement, descriptor, plain
from provenance.formats.uris import TEST_RESULT_V01
from provenance.progress import Reporter

__all__ = [
    "DECLARE_ATTR",
    "FAILED",
    "FORMATS",
    "PASSED",
    "RESULTS_FILE",
    "RESULTS_SCHEMA",
    "WARNED",
    "TestCase",
    "TestResults",
    "clean_id",
    "declared_reports",
    "find_results",
    "parse_junit",
    "parse_report",
    "parse_results_json",
    "parse_summary",
    "parse_tap",
    "read_for_check",
    "sha256_hex",
    "sign_for_check",
    "statement",
]

DECLARE_ATTR = "testReport"  # derivation attribute: report path(s), relative to $out
_SUFFIX_FORMAT = {".json": "results", ".xml": "junit", ".tap": "tap"}  # else: summary
_PEEK = 1 << 20  # bytes looked at to tell whether an oversized .xml is a JUnit report
# ATerm env entry ("testReport","value"): quotes in values are escaped, so this literal
# can only be that entry (outputs are 4-tuples, input drvs are followed by a list).
_ATERM_DECLARED = re.compile(r'\("' + DECLARE_ATTR + r'","((?:[^"\\]|\\.)*)"\)')
_ATERM_JSON = re.compile(r'\("__json","((?:[^"\\]|\\.)*)"\)')
_ATERM_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}


def parse_summary(text: str) -> tuple[int, int, int] | None:
    """(passed, failed, skipped) from the runner summaries in `text`, or None if none.

    Raises AttestationError when the text says tests failed but nothing counts them.
    """
    found = runnerlogs.scan(text)
    return found.counts() if found.found else None


def parse_report(data: bytes, fmt: str, source: str = "") -> TestResults:
    """Parse a raw report of `fmt` (junit | tap | summary) into sorted results."""
    check_size(data, f"the {fmt} report")
    digest = sha256_hex(data)
    if fmt == "junit":
        return from_cases(fmt, parse_junit(data), source, digest)
    text = data.decode(errors="replace")
    if fmt == "tap":
        return from_cases(fmt, parse_tap(text), source, digest)
    if fmt == "summary":
        counts = runnerlogs.scan(text).counts()
        return TestResults(fmt, (), *counts, source=source, digest=digest)
    msg = f"unknown report format {fmt!r} (expected one of {', '.join(FORMATS)})"
    raise AttestationError(msg)


# -- where the report is -----------------------------------------------------------------


def declared_reports(drv_path: str) -> list[str]:
    """The report paths a check declares with `testReport` (none: []), read from its .drv.

    Reads the .drv straight from the store (no nix call, as attest's closure walk does).
    """
    try:
        text = Path(drv_path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        msg = f"cannot read {drv_path} to see whether it declares a test report ({e.strerror})"
        raise AttestationError(msg) from None
    if m := _ATERM_DECLARED.search(text):
        return _unescape(m.group(1)).split()
    if m := _ATERM_JSON.search(text):
        # __structuredAttrs: the attributes are one JSON document in the __json entry.
        try:
            value = json.loads(_unescape(m.group(1))).get(DECLARE_ATTR)
        except (ValueError, AttributeError, RecursionError):
            msg = f"{drv_path}: its __json attributes are not a JSON object"
            raise AttestationError(msg) from None
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        if value is not None:
            msg = f"{drv_path}: {DECLARE_ATTR} must be a string or a list of strings"
            raise AttestationError(msg)
    return []


def _unescape(aterm: str) -> str:
    return re.sub(
        r"\\(.)", lambda e: _ATERM_UNESCAPE.get(e.group(1), e.group(1)), aterm, flags=re.S
    )


def _safe_file(root: Path, rel: str) -> Path:
    """root/rel when it is a regular file inside root, reached through no symlink."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        msg = f"{DECLARE_ATTR} = {rel!r} must be a relative path inside the output, without '..'"
        raise AttestationError(msg)
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            msg = f"the declared test report {path} is (or is under) a symlink; refusing it"
            raise AttestationError(msg)
    if not path.is_file():
        msg = f"the check declares {DECLARE_ATTR} = {rel!r} but {path} is not a file"
        raise AttestationError(msg)
    return path


def _kind(path: Path) -> str:
    return _SUFFIX_FORMAT.get(path.suffix, "summary")


def _read(path: Path, kind: str) -> TestResults:
    """One report file, parsed; errors name the file."""
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        msg = f"{path}: {size} bytes, over the {MAX_REPORT_BYTES} byte limit for a test report"
        raise AttestationError(msg)
    data = path.read_bytes()
    try:
        if kind == "results":
            return parse_results_json(data, str(path))
        return parse_report(data, kind, str(path))
    except AttestationError as e:
        raise AttestationError(f"{path}: {e.message}") from None


def _one_kind(paths: list[Path], kinds: set[str], what: str) -> TestResults:
    if len(kinds) > 1:
        names = ", ".join(str(p) for p in paths)
        msg = (
            f"{what} reports of different kinds ({names}): cannot tell which is the run's; "
            f"declare one with the {DECLARE_ATTR} attribute"
        )
        raise AttestationError(msg)
    kind = kinds.pop()
    if len(paths) > 1 and kind not in ("junit", "tap"):
        names = ", ".join(str(p) for p in paths)
        msg = f"{what} several {kind} reports ({names}); declare one with {DECLARE_ATTR}"
        raise AttestationError(msg)
    return merge([_read(p, kind) for p in paths], kind)


def _declared(outputs: Mapping[str, str], declared: list[str]) -> TestResults:
    if "out" not in outputs:
        msg = f"the check declares {DECLARE_ATTR} but has no output named 'out' to find it in"
        raise AttestationError(msg)
    paths = [_safe_file(Path(outputs["out"]), rel) for rel in declared]
    return _one_kind(paths, {_kind(p) for p in paths}, "the check declares")


def _is_junit(path: Path) -> bool:
    with path.open("rb") as f:
        return JUNIT_HINT.search(f.read(_PEEK)) is not None


def _found(outputs: Mapping[str, str]) -> TestResults | None:
    """Well-known reports at the top of the outputs (never deeper: a package's data)."""
    paths: list[Path] = []
    for _, out in sorted(outputs.items()):
        root = Path(out)
        entries = sorted(root.iterdir()) if root.is_dir() and not root.is_symlink() else [root]
        for p in entries:
            if p.is_symlink() or not p.is_file():
                continue
            if (
                p.name == RESULTS_FILE
                or p.suffix == ".tap"
                or (p.suffix == ".xml" and _is_junit(p))
            ):
                paths.append(p)
    if not paths:
        return None
    return _one_kind(
        paths,
        {"results" if p.name == RESULTS_FILE else _kind(p) for p in paths},
        "the outputs hold",
    )


def _agree(report: TestResults, log: runnerlogs.LogSummary) -> None:
    """The log's runner summary must not contradict a report that lists no failure."""
    if not log.found or report.failed:
        return  # a report with failures fails the check whatever the log says
    if log.failed or log.failing():
        msg = (
            f"the build log's runner summary says tests failed ({log.failing() or log.describe()}) "
            f"but {report.source} lists no failed test"
        )
        raise AttestationError(msg)
    if not log.exact:
        return  # node and prove count tests differently from their reports
    skipped = log.skipped + (log.deselected if report.format == "summary" else 0)
    if (report.passed, report.skipped) != (log.passed, skipped):
        msg = (
            f"{report.source} says {report.summary_line()} but the build log's runner summary "
            f"says {log.passed} passed, {log.failed} failed, {skipped} skipped "
            f"({log.describe()}): the two disagree"
        )
        raise AttestationError(msg)


def find_results(
    outputs: Mapping[str, str], log: bytes | None, declared: list[str] | None = None
) -> TestResults | None:
    """The results a built check left, or None when it left neither report nor summary.

    `declared`: the check's `testReport` paths. Raises AttestationError (naming the
    file) when a report is unreadable or contradicts the log: the check then fails.
    """
    report = _declared(outputs, declared) if declared else _found(outputs)
    text = log.decode(errors="replace") if log is not None else ""
    try:
        summary = runnerlogs.scan(text)
        if report is None:
            if not summary.found:
                return None
            counts = summary.counts()
            return TestResults("summary", (), *counts, "build log", sha256_hex(log or b""))
    except AttestationError as e:
        raise AttestationError(f"build log: {e.message}") from None
    _agree(report, summary)
    return report


# -- the statement ---------------------------------------------------------------------


def statement(results: TestResults, subjects: list[Any], drv: Any, source: Any) -> PlainStatement:
    """A test-result v0.1 statement about the same subjects as the provenance statement.

    configuration pins what was tested and how: the check's derivation (drvPath and the
    NAR SHA-256 of the .drv), the source (commit + NAR hash), and the results file.
    """
    listed = bool(results.tests)
    # Plain JSON in intoto.TestResult's shape (formats/plainjson.py: no pydantic here).
    predicate: dict[str, Any] = {
        "result": results.result,
        "configuration": [
            plain(drv),
            plain(source),
            descriptor(
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
    }
    if listed:
        predicate["passedTests"] = results.ids("passed")
        predicate["warnedTests"] = results.ids("skipped")
        predicate["failedTests"] = results.ids("failed")
    return PlainStatement.of(subjects, TEST_RESULT_V01, predicate)


def _media_type(results: TestResults) -> str:
    if results.source.endswith(".json"):  # results.json, or a declared one by another name
        return "application/json"
    return "application/xml" if results.format == "junit" else "text/plain"


def drv_descriptor(
    drv_path: str, drv_nar_sha256: str | None, check: str, attribute: str
) -> dict[str, Any]:
    return descriptor(
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
    outputs: Mapping[str, tuple[str, str]],
    log: bytes | None,
    check: str,
    reporter: Reporter,
    drv_path: str | None = None,
    physical: Callable[[str], str] = str,
) -> tuple[TestResults | None, str | None]:
    """The results a built check left, and why the check failed by them (None: it did not).

    A report that cannot be read, or that the log contradicts, fails the check: in
    doubt, nothing is signed. So does a result that says FAILED. `provenance build`
    reads results *before* signing anything (see attest.py). Files are read where
    `physical` says (a chroot store: storeroot.py); the statement names store paths.
    """
    paths = {o: physical(p) for o, (p, _) in outputs.items()}
    try:
        declared = declared_reports(physical(drv_path)) if drv_path else []
        results = find_results(paths, log, declared)
    except AttestationError as e:
        return None, f"its test results cannot be trusted: {e.message}"
    except OSError as e:
        return None, f"its test report cannot be read: {e.filename}: {e.strerror}"
    for o, where in paths.items():
        if results is not None and where != outputs[o][0] and results.source.startswith(where):
            logical = outputs[o][0] + results.source[len(where) :]
            results = dataclasses.replace(results, source=logical)
    if results is None:
        reporter.info(f"{check}: no test report and no runner summary: no test-result statement")
        return None, None
    reporter.info(f"{check}: {results.summary_line()} [{results.result}, from {results.format}]")
    if results.result == FAILED:
        return results, f"its test results report {results.summary_line()}"
    return results, None


def sign_for_check(
    results: TestResults,
    subjects: list[Any],
    attribute: str,
    check: str,
    drv_path: str,
    drv_info: PathInfo | None,
    source: Any,
    signer: Signer,
) -> str:
    """The signed test-result line that goes beside the check's provenance statement."""
    drv = drv_descriptor(drv_path, drv_info.nar_hash if drv_info else None, check, attribute)
    stmt = statement(results, subjects, drv, source)
    return dsse.sign(stmt.dump_bytes(), [signer]).to_json()
