"""Test-result parsers on real reports recorded from each runner, and their agreement with
the in-sandbox normaliser (nix/check-builder.sh + nix/normalise-results.awk run by the
host's static busybox, exactly as the sandbox runs them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from provenance import testresults as tr
from provenance.errors import AttestationError
from provenance.example import find_static_busybox
from provenance.intoto import TEST_RESULT_V01, ResourceDescriptor

REPORTS = Path(__file__).parent.parent / "fixtures" / "reports"
NIX_DIR = Path(__file__).parent.parent.parent / "nix"
FORMAT = {".xml": "junit", ".tap": "tap", ".txt": "summary"}
SAMPLES = sorted(p.name for p in REPORTS.iterdir() if p.suffix in FORMAT)

# name -> (passed, failed, skipped), as each runner itself counted them
EXPECTED = {
    "pytest-junit.xml": (4, 2, 2),  # pytest: 1 failed, 1 error, 1 skipped, 1 xfailed
    "pytest-terminal.txt": (4, 2, 1),  # "1 failed, 4 passed, 1 skipped, 1 xfailed, 1 error"
    "gotestsum-junit.xml": (42, 13, 5),
    "nextest-junit.xml": (2, 1, 0),  # the flaky test passed on retry
    "jest-junit.xml": (2, 1, 1),
    "node-junit.xml": (2, 1, 2),  # skip + todo
    "node-tap.tap": (2, 1, 2),
    "perl-test-more.tap": (2, 1, 2),  # skip + TODO
    "cargo-test.txt": (1, 1, 1),
}


def parse(name: str) -> tr.TestResults:
    path = REPORTS / name
    return tr.parse_report(path.read_bytes(), FORMAT[path.suffix], name)


def test_every_sample_is_covered() -> None:
    assert sorted(EXPECTED) == SAMPLES


@pytest.mark.parametrize("name", SAMPLES)
def test_counts_match_what_the_runner_reported(name: str) -> None:
    r = parse(name)
    assert (r.passed, r.failed, r.skipped) == EXPECTED[name]
    assert r.result == tr.FAILED  # every sample has a failing test on purpose
    assert r.digest == tr.sha256_hex((REPORTS / name).read_bytes())


def test_pytest_ids_outcomes_and_escapes() -> None:
    r = parse("pytest-junit.xml")
    by_id = {t.id: t.outcome for t in r.tests}
    assert by_id['tests.test_sample::test_param[<x>-"q" & y]'] == "passed"
    assert by_id["tests.test_sample.TestGroup::test_method"] == "passed"
    assert by_id["tests.test_sample::test_error"] == "failed"  # <error>
    assert by_id["tests.test_sample::test_xfail"] == "skipped"
    assert [t.id for t in r.tests] == sorted((t.id for t in r.tests), key=str.encode)


def test_runner_specific_shapes() -> None:
    nextest = {t.id: t.outcome for t in parse("nextest-junit.xml").tests}
    assert nextest["nextest-tests::basic::test_flaky_mod_4"] == "passed"  # flakyFailure only
    assert nextest["nextest-tests::basic::test_failure_assert"] == "failed"
    gotest = {t.id: t.outcome for t in parse("gotestsum-junit.xml").tests}
    assert gotest["TestMain"] == "failed"  # empty classname: the name alone
    assert gotest["gotest.tools/gotestsum/testjson/internal/good::TestSkipped"] == "skipped"
    jest = {t.id for t in parse("jest-junit.xml").tests}
    assert "add adds two numbers" in jest  # classname == name: not doubled
    node_tap = {t.id: t.outcome for t in parse("node-tap.tap").tests}
    assert node_tap == {
        "add > adds two numbers": "passed",
        "add > skipped case": "skipped",
        "add > todo case": "skipped",
        "fails on purpose": "failed",
        "top level passes": "passed",
    }  # the suite "add" itself is not a test
    perl = {t.id: t.outcome for t in parse("perl-test-more.tap").tests}
    assert perl["4"] == "skipped"  # no description: the test number
    assert perl["future feature"] == "skipped"  # TODO


def _run_builder(tmp_path: Path, report: Path, fmt: str) -> tuple[int, bytes, str]:
    """Run nix/check-builder.sh on the host with the static busybox, as Nix would."""
    src = tmp_path / "src"
    src.mkdir()
    name = "report" + report.suffix
    shutil.copy(report, src / name)
    out = tmp_path / "out"
    (tmp_path / "build").mkdir()
    busybox = str(find_static_busybox())
    env = {
        "busybox": busybox,
        "src": str(src),
        "testCommand": f"cat {name}" if fmt == "summary" else "true",
        "format": fmt,
        "report": name,
        "normaliser": str(NIX_DIR / "normalise-results.awk"),
        "out": str(out),
        "TMPDIR": str(tmp_path / "build"),
        "PATH": str(Path(busybox).parent),
    }
    cmd = [busybox, "sh", str(NIX_DIR / "check-builder.sh")]
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    results = out / "results.json"
    return done.returncode, results.read_bytes() if results.exists() else b"", done.stdout.decode()


@pytest.mark.parametrize("name", SAMPLES)
def test_sandbox_normaliser_agrees_byte_for_byte(tmp_path: Path, name: str) -> None:
    path = REPORTS / name
    rc, written, log = _run_builder(tmp_path, path, FORMAT[path.suffix])
    assert rc != 0  # a failed test fails the check
    assert "report lists failed tests" in log or "failed (exit" in log
    assert written == parse(name).render()
    assert tr.parse_results_json(written).tests == parse(name).tests
    if FORMAT[path.suffix] != "summary":
        assert path.read_text(errors="replace").splitlines()[1] in log  # raw report kept in the log


def test_passing_report_builds_and_drops_clocks(tmp_path: Path) -> None:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        'timestamp="2026-11-23T13:20:35.548659+00:00" hostname="vm" time="0.039">'
        '<testcase classname="t" name="b" time="0.001"/>'
        '<testcase classname="t" name="a" time="0.7"/>'
        "</testsuite></testsuites>"
    )
    report = tmp_path / "r.xml"
    report.write_text(xml)
    rc, written, log = _run_builder(tmp_path, report, "junit")
    assert rc == 0, log
    assert written == (
        b'{"schema":"provenance-test-results/v1","format":"junit",'
        b'"counts":{"passed":2,"failed":0,"skipped":0},"tests":[\n'
        b'{"id":"t::a","outcome":"passed"},\n{"id":"t::b","outcome":"passed"}\n]}\n'
    )
    assert b"2026" not in written and b"vm" not in written and b"0.7" not in written
    assert "2026-11-23T13:20:35" in log  # timings stay in the log


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><testcase name="&a;"/>',
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><testcase name="x"/>',
    ],
)
def test_dtd_and_entities_are_refused_in_both_parsers(tmp_path: Path, payload: bytes) -> None:
    with pytest.raises(AttestationError, match="DTD"):
        tr.parse_junit(payload)
    report = tmp_path / "evil.xml"
    report.write_bytes(payload)
    rc, written, _ = _run_builder(tmp_path, report, "junit")
    assert rc == 2
    assert written == b""


def test_malformed_and_empty_reports_are_errors() -> None:
    with pytest.raises(AttestationError, match="not well-formed"):
        tr.parse_report(b"<testsuite><testcase name='a'>", "junit")
    with pytest.raises(AttestationError, match="no tests"):
        tr.parse_report(b"<testsuites/>", "junit")
    with pytest.raises(AttestationError, match="no 'N passed"):
        tr.parse_report(b"all good\n", "summary")
    with pytest.raises(AttestationError, match="unknown report format"):
        tr.parse_report(b"", "xunit")
    with pytest.raises(AttestationError, match="not a provenance-test-results/v1"):
        tr.parse_results_json(b'{"schema":"other"}')


def test_verdicts() -> None:
    def res(p: int, f: int, s: int) -> str:
        return tr.TestResults("summary", (), p, f, s).result

    assert res(5, 0, 0) == tr.PASSED
    assert res(5, 0, 1) == tr.WARNED  # skipped tests: passed with a warning
    assert res(0, 0, 0) == tr.WARNED  # nothing ran: never PASSED
    assert res(5, 1, 0) == tr.FAILED
    assert tr.TestResults("summary", (), 147, 0, 0).summary_line() == "147 passed, 0 failed"


def test_summary_takes_the_last_line() -> None:
    text = "collected 3 items\n1 passed in progress\n=== 3 passed, 1 failed, 2 errors in 0.1s ===\n"
    assert tr.parse_summary(text) == (3, 3, 0)
    assert tr.parse_summary("1 xfailed, 2 xpassed\n") is None


def _out(tmp_path: Path, files: dict[str, bytes]) -> dict[str, str]:
    out = tmp_path / "out"
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    return {"out": str(out)}


def test_find_results_prefers_the_normalised_file(tmp_path: Path) -> None:
    normalised = parse("jest-junit.xml").render()
    outputs = _out(
        tmp_path,
        {"results.json": normalised, "junit.xml": (REPORTS / "pytest-junit.xml").read_bytes()},
    )
    found = tr.find_results(outputs, b"9 passed, 0 failed\n")
    assert found is not None
    assert found.source.endswith("results.json")
    assert (found.passed, found.failed) == (2, 1)


def test_find_results_reads_reports_then_text_then_the_log(tmp_path: Path) -> None:
    nextest = (REPORTS / "nextest-junit.xml").read_bytes()
    junit = _out(tmp_path / "a", {"reports/junit.xml": nextest})
    found = tr.find_results(junit, None)
    assert found is not None
    assert (found.format, found.passed) == ("junit", 2)
    text = _out(tmp_path / "b", {"result.txt": b"test_one ok\n2 passed, 0 failed\n"})
    found = tr.find_results(text, None)
    assert found is not None
    assert (found.format, found.passed, found.result) == ("summary", 2, tr.PASSED)
    plain = _out(tmp_path / "c", {"lib.txt": b"library\n"})
    found = tr.find_results(plain, b"building\n===== 7 passed in 0.12s =====\n")
    assert found is not None
    assert (found.source, found.passed) == ("build log", 7)
    assert tr.find_results(plain, b"no counts here\n") is None


def test_statement_is_a_valid_test_result_predicate() -> None:
    r = parse("pytest-junit.xml")
    subject = [ResourceDescriptor(name="/nix/store/x-check", digest={"sha256": "ab" * 32})]
    drv = tr.drv_descriptor("/nix/store/y-check.drv", "cd" * 32, "unit", "checks.x.unit")
    src = ResourceDescriptor(name="source", digest={"sha256": "ef" * 32, "gitCommit": "1" * 40})
    stmt = tr.statement(r, subject, drv, src)
    obj = json.loads(stmt.dump_bytes())
    assert obj["predicateType"] == TEST_RESULT_V01
    pred = obj["predicate"]
    assert pred["result"] == "FAILED"
    assert pred["configuration"][0]["name"] == "/nix/store/y-check.drv"
    assert pred["configuration"][1]["digest"]["gitCommit"] == "1" * 40
    assert pred["configuration"][2]["annotations"]["passed"] == 4
    assert "tests.test_sample::test_fails" in pred["failedTests"]
    assert "tests.test_sample::test_skipped" in pred["warnedTests"]
    assert len(pred["passedTests"]) == 4
    # Cross-check with the in-toto project's own schema (protobuf rejects unknown fields).
    # Imported here: nixpkgs has no in-toto-attestation, and checks.<system>.tests runs this file.
    json_format = pytest.importorskip("google.protobuf.json_format")
    pb = pytest.importorskip("in_toto_attestation.predicates.test_result.v0.test_result_pb2")
    json_format.ParseDict(pred, pb.TestResult())
