"""Where a check's results come from: declared beats found, reports beat text, in doubt fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provenance.attest import testresults as tr
from provenance.errors import AttestationError
from provenance.progress import Reporter

REPORTS = Path(__file__).parent.parent / "fixtures" / "reports"
PYTEST_XML = (REPORTS / "pytest-junit.xml").read_bytes()  # 4 passed, 2 failed, 2 skipped
BATS_XML = (REPORTS / "bats-junit.xml").read_bytes()  # 2 passed, 1 failed, 1 skipped
LARGE_XML = (REPORTS / "pytest-large-junit.xml").read_bytes()  # 586 passed, 1 skipped
LARGE_LOG = (REPORTS / "pytest-large-terminal.txt").read_bytes()


def _out(tmp_path: Path, files: dict[str, bytes], name: str = "out") -> dict[str, str]:
    out = tmp_path / name
    out.mkdir(parents=True)
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return {"out": str(out)}


def test_text_files_are_never_mined(tmp_path: Path) -> None:
    outputs = _out(
        tmp_path,
        {
            "NOTES.txt": b"the parser now has 120 passed checks\n",
            "results.txt": b"3 passed, 2 failed\n",
        },
    )
    assert tr.find_results(outputs, b"building\n") is None
    # ...but the runner's summary in the log is read (the files still are not).
    found = tr.find_results(outputs, b"building\n=== 7 passed in 0.12s ===\n")
    assert found is not None
    assert (found.source, found.passed, found.failed, found.format) == (
        "build log",
        7,
        0,
        "summary",
    )


def test_a_declared_report_is_read_and_nothing_else(tmp_path: Path) -> None:
    outputs = _out(
        tmp_path,
        {
            "junit.xml": PYTEST_XML,
            "reports/large.xml": LARGE_XML,
            "results.txt": b"1 passed, 0 failed\n",
        },
    )
    found = tr.find_results(outputs, LARGE_LOG, ["reports/large.xml"])
    assert found is not None
    assert found.source == f"{outputs['out']}/reports/large.xml"
    assert (found.passed, found.failed, found.skipped) == (586, 0, 1)
    # Undeclared, the same outputs give the top-level report (and it lists failures).
    found = tr.find_results(outputs, None)
    assert found is not None and found.source.endswith("/junit.xml") and found.failed == 2


def test_a_declared_text_report_is_read_as_a_runner_summary(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"result.txt": b"test_one ok\n2 passed, 0 failed\n"})
    found = tr.find_results(outputs, b"test_one ok\n2 passed, 0 failed\n", ["result.txt"])
    assert found is not None
    assert (found.format, found.passed, found.result) == ("summary", 2, tr.PASSED)


@pytest.mark.parametrize(
    ("declared", "why"),
    [
        (["missing.xml"], "is not a file"),
        (["/etc/passwd"], "relative path"),
        (["../out2/junit.xml"], "without '..'"),
        (["link.xml"], "symlink"),
        (["dir/junit.xml"], "symlink"),
        (["junit.xml", "report.tap"], "different kinds"),
    ],
)
def test_bad_declarations_fail(tmp_path: Path, declared: list[str], why: str) -> None:
    outputs = _out(tmp_path, {"junit.xml": BATS_XML, "report.tap": b"1..1\nok 1 a\n"})
    os.symlink("junit.xml", Path(outputs["out"]) / "link.xml")
    os.symlink(str(tmp_path), Path(outputs["out"]) / "dir")
    with pytest.raises(AttestationError, match=why):
        tr.find_results(outputs, None, declared)


def test_a_declaration_needs_the_out_output(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"junit.xml": BATS_XML}, name="dev")
    with pytest.raises(AttestationError, match="no output named 'out'"):
        tr.find_results({"dev": outputs["out"]}, None, ["junit.xml"])


def test_only_the_top_of_an_output_is_searched(tmp_path: Path) -> None:
    # A package's data (a JUnit file deep in site-packages) is not the check's tests.
    outputs = _out(
        tmp_path,
        {
            "lib/python3.11/site-packages/junitparser/tests/data/failing.xml": PYTEST_XML,
            "pom.xml": b"<project><modelVersion>4.0.0</modelVersion></project>",
        },
    )
    assert tr.find_results(outputs, None) is None


def test_reports_of_two_kinds_are_ambiguous(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"junit.xml": BATS_XML, "results.tap": b"1..1\nok 1 a\n"})
    with pytest.raises(AttestationError, match=r"different kinds.*declare one"):
        tr.find_results(outputs, None)
    outputs = _out(tmp_path / "b", {"junit.xml": BATS_XML, "results.json": b"{}"})
    with pytest.raises(AttestationError, match="different kinds"):
        tr.find_results(outputs, None)


def test_several_junit_files_are_merged(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"a.xml": BATS_XML, "b.xml": PYTEST_XML})
    found = tr.find_results(outputs, None)
    assert found is not None
    assert (found.passed, found.failed, found.skipped) == (6, 3, 3)
    assert found.source == f"{outputs['out']}/a.xml, {outputs['out']}/b.xml"


def test_an_unreadable_report_fails_and_names_the_file(tmp_path: Path) -> None:
    truncated = (REPORTS / "bad" / "pytest-junit-truncated.xml").read_bytes()
    outputs = _out(tmp_path, {"junit.xml": truncated})
    with pytest.raises(AttestationError, match=r"/out/junit\.xml: .*not well-formed"):
        tr.find_results(outputs, b"=== 5 passed in 0.1s ===\n")
    namespaced = (REPORTS / "junit-namespaced.xml").read_bytes()
    found = tr.find_results(_out(tmp_path / "ns", {"junit.xml": namespaced}), None)
    assert found is not None and (found.passed, found.failed) == (2, 1)  # it parses


def test_a_log_that_disagrees_with_the_report_fails(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"junit.xml": LARGE_XML})
    assert tr.find_results(outputs, LARGE_LOG) is not None  # 586 passed, 1 skipped: agree
    with pytest.raises(AttestationError, match="disagree"):
        tr.find_results(outputs, b"=== 3 passed in 0.1s ===\n")
    with pytest.raises(AttestationError, match="disagree"):
        tr.find_results(outputs, b"=== 586 passed in 0.1s ===\n")  # the skip went missing
    with pytest.raises(AttestationError, match=r"says tests failed.*lists no failed test"):
        tr.find_results(outputs, b"=== 1 failed, 586 passed, 1 skipped in 0.1s ===\n")
    with pytest.raises(AttestationError, match="says tests failed"):
        tr.find_results(outputs, b"FAIL\texample.com/pkg\t0.1s\n")


def test_a_failing_report_fails_whatever_the_log_says(tmp_path: Path) -> None:
    outputs = _out(tmp_path, {"junit.xml": PYTEST_XML})
    found = tr.find_results(outputs, b"=== 99 passed in 0.1s ===\n")
    assert found is not None and found.result == tr.FAILED


def test_node_and_prove_are_compared_on_failures_only(tmp_path: Path) -> None:
    # node counts a parent test beside its children: 7 tests, the report has 6 cases.
    outputs = _out(tmp_path, {"junit.xml": (REPORTS / "node-nested-junit.xml").read_bytes()})
    found = tr.find_results(outputs, (REPORTS / "node-nested-spec.txt").read_bytes())
    assert found is not None and (found.passed, found.skipped) == (5, 1)
    with pytest.raises(AttestationError, match="says tests failed"):
        tr.find_results(outputs, b"# tests 7\n# pass 6\n# fail 1\n")


def test_summary_results_agree_with_their_log_deselected_included(tmp_path: Path) -> None:
    log = b"3 passed, 2 deselected in 0.10s\n"
    normalised = tr.parse_report(log, "summary").render()  # what mkTestCheck would write
    found = tr.find_results(_out(tmp_path, {"results.json": normalised}), log, ["results.json"])
    assert found is not None and (found.passed, found.skipped) == (3, 2)


def test_declared_reports_are_read_from_the_drv(tmp_path: Path) -> None:
    drv = tmp_path / "x.drv"
    env = '[("builder","/b"),("name","x"),("testReport","reports/a.xml reports/b\\"c.xml")]'
    drv.write_text(f'Derive([("out","/nix/store/x","","")],[],[],"x86_64-linux","/b",[],{env})')
    assert tr.declared_reports(str(drv)) == ["reports/a.xml", 'reports/b"c.xml']
    plain = tmp_path / "y.drv"
    # The attribute's name inside another value is not a declaration.
    plain.write_text(
        'Derive([("out","/nix/store/y","","")],[],[],"x","/b",["(\\"testReport\\",\\"x\\")"],[])'
    )
    assert tr.declared_reports(str(plain)) == []
    with pytest.raises(AttestationError, match="cannot read"):
        tr.declared_reports(str(tmp_path / "missing.drv"))


class _Quiet(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_read_for_check_says_why_a_check_fails(tmp_path: Path) -> None:
    rep = _Quiet()
    truncated = (REPORTS / "bad" / "pytest-junit-truncated.xml").read_bytes()
    out = _out(tmp_path / "a", {"junit.xml": truncated})["out"]
    results, why = tr.read_for_check({"out": (out, "ab")}, None, "unit", rep)
    assert results is None
    assert why is not None and why.startswith("its test results cannot be trusted: ")
    assert f"{out}/junit.xml" in why
    out = _out(tmp_path / "b", {"junit.xml": PYTEST_XML})["out"]
    results, why = tr.read_for_check({"out": (out, "ab")}, None, "unit", rep)
    assert results is not None and why == "its test results report 4 passed, 2 failed, 2 skipped"
    out = _out(tmp_path / "c", {"lib.txt": b"library\n"})["out"]
    assert tr.read_for_check({"out": (out, "ab")}, b"built\n", "unit", rep) == (None, None)
    assert "unit: no test report and no runner summary: no test-result statement" in rep.lines
