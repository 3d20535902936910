"""Test-result parsers on real reports recorded from each runner, and their agreement with
the in-sandbox normaliser (nix/check-builder.sh + nix/normalise-results.awk run by the
host's static busybox, exactly as the sandbox runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.attest import testresults as tr
from provenance.errors import AttestationError
from provenance.formats.intoto import TEST_RESULT_V01, ResourceDescriptor
from tests.unit.normaliser import normalise_text, run_builder

REPORTS = Path(__file__).parent.parent / "fixtures" / "reports"
FORMAT = {".xml": "junit", ".tap": "tap", ".txt": "summary"}
SAMPLES = sorted(p.name for p in REPORTS.iterdir() if p.suffix in FORMAT)
BAD = sorted(p.name for p in (REPORTS / "bad").iterdir() if p.suffix in FORMAT)

# name -> (passed, failed, skipped), as each runner itself counted them (README.md there)
EXPECTED = {
    "pytest-junit.xml": (4, 2, 2),  # pytest: 1 failed, 1 error, 1 skipped, 1 xfailed
    "pytest-terminal.txt": (4, 2, 2),  # "1 failed, 4 passed, 1 skipped, 1 xfailed, 1 error"
    "pytest-junit-teardown.xml": (6, 3, 2),  # the teardown error is the test's failure
    "pytest-teardown-terminal.txt": (7, 3, 2),  # "1 failed, 6 passed, ..., 1 xpassed, 2 errors"
    "pytest-verbose.txt": (7, 3, 2),  # per-test lines (`TestGroup::test_7 PASSED`) don't count
    "pytest-large-junit.xml": (586, 0, 1),
    "pytest-large-terminal.txt": (586, 0, 1),  # "586 passed, 1 skipped in 0.74s"
    "pytest-large-verbose.txt": (586, 0, 1),  # 587 lines like `...::test_79 PASSED`
    "unittest-failed.txt": (2, 3, 2),  # Ran 7; failures=1, errors=1, unexpected successes=1
    "unittest-ok.txt": (2, 0, 1),  # Ran 3; OK (skipped=1)
    "cargo-test.txt": (1, 1, 1),
    "cargo-no-fail-fast.txt": (4, 1, 1),  # three test binaries: 1+2+1 passed, summed
    "cargo-ok.txt": (5, 0, 1),  # 2+2+1 (the old parser read only the last line: 1)
    "gotestsum-junit.xml": (42, 13, 5),
    "gotestsum-summary.txt": (41, 13, 5),  # DONE 59 tests, 5 skipped, 13 failures
    "gotestsum-reruns.txt": (6, 8, 0),  # DONE 3 runs, 14 tests, 8 failures (cumulative)
    "nextest-junit.xml": (2, 1, 0),  # the flaky test passed on retry
    "jest-junit.xml": (2, 1, 1),
    "jest-junit-todo.xml": (4, 1, 1),  # jest-junit writes the todo test as a plain case
    "jest-terminal.txt": (3, 1, 2),  # Tests: 1 failed, 1 skipped, 1 todo, 3 passed, 6 total
    "node-junit.xml": (2, 1, 2),  # skip + todo
    "node-tap.tap": (2, 1, 2),
    "node-tap-stdout.txt": (2, 1, 2),  # the TAP stream, then node's own counters
    "node-spec.txt": (2, 1, 2),
    "node-nested-junit.xml": (5, 0, 1),  # nested <testsuite>s
    "node-nested-spec.txt": (6, 0, 1),  # node counts the parent test too: "tests 7"
    "perl-test-more.tap": (2, 1, 2),  # skip + TODO
    "perl-subtests.tap": (4, 0, 1),  # a subtest's two leaves, not its parent
    "prove-failed.txt": (8, 1, 0),  # Files=2, Tests=9; Failed: 1
    "prove-verbose.txt": (4, 0, 0),  # Tests=4 (top level; prove does not count skips apart)
    "bats.tap": (2, 1, 1),
    "bats-tap-stdout.txt": (2, 1, 1),  # bats without a terminal prints TAP
    "bats-pretty.txt": (2, 1, 1),  # 4 tests, 1 failure, 1 skipped (colours and all)
    "bats-junit.xml": (2, 1, 1),
    "junit-namespaced.xml": (2, 1, 1),  # xmlns="..."
    "junit-prefixed.xml": (2, 1, 1),  # <j:testcase>
}

# name -> what the refusal says (each is refused by the Python parser AND the sandbox)
REFUSED = {
    "pytest-junit-truncated.xml": "not well-formed XML",
    "junit-suite-counts-failures.xml": "counts failures=1 errors=0 but none of its test cases",
    "junit-error-outside-testcase.xml": "<error> outside any <testcase>",
    "jest-suite-failed-junit.xml": "lists no tests",
    "jest-suite-failed.txt": "1 test suite(s) failed",
    "perl-bail-out.tap": "bailed out",
    "perl-died.tap": "no plan",
    "perl-plan-short.tap": "plan 1..5 announces 5 tests but it has 3 results",
    "prove-exit-status.txt": "Result: FAIL",
    "prove-bail-out.txt": "Result: FAIL",
    "go-test-failed.txt": "go test printed",
    "plain-beside-pytest.txt": "plain 'N passed, N failed' line(s) beside other summaries",
}


def parse(name: str) -> tr.TestResults:
    path = REPORTS / name
    return tr.parse_report(path.read_bytes(), FORMAT[path.suffix], name)


def test_every_sample_is_covered() -> None:
    assert sorted(EXPECTED) == SAMPLES
    assert sorted(REFUSED) == BAD


@pytest.mark.parametrize("name", SAMPLES)
def test_counts_match_what_the_runner_reported(name: str) -> None:
    r = parse(name)
    assert (r.passed, r.failed, r.skipped) == EXPECTED[name]
    assert (r.result == tr.FAILED) == (EXPECTED[name][1] > 0)
    assert r.digest == tr.sha256_hex((REPORTS / name).read_bytes())


@pytest.mark.parametrize("name", SAMPLES)
def test_sandbox_normaliser_agrees_byte_for_byte(tmp_path: Path, name: str) -> None:
    path = REPORTS / name
    built = run_builder(tmp_path, path, FORMAT[path.suffix])
    failed = EXPECTED[name][1] > 0
    assert (built.rc != 0) == failed, built.log  # a failed test fails the check
    if failed:
        assert "report lists failed tests" in built.log or "failed (exit" in built.log
    assert built.written == parse(name).render()
    assert tr.parse_results_json(built.written).tests == parse(name).tests
    if FORMAT[path.suffix] != "summary":
        line = path.read_text(errors="replace").splitlines()[-1]
        assert f"| {line}" in built.log  # the raw report is kept in the log, prefixed


@pytest.mark.parametrize("name", BAD)
def test_unreadable_reports_are_refused_by_both_parsers(tmp_path: Path, name: str) -> None:
    path = REPORTS / "bad" / name
    with pytest.raises(AttestationError, match=r"^.*" + _re(REFUSED[name])):
        parse(f"bad/{name}")
    built = run_builder(tmp_path, path, FORMAT[path.suffix])
    assert built.rc == 2, built.log
    assert built.written == b""
    assert "normalise-results: " in built.log  # the sandbox says why


def _re(text: str) -> str:
    import re  # noqa: PLC0415

    return re.escape(text)


def test_pytest_ids_outcomes_and_escapes() -> None:
    r = parse("pytest-junit.xml")
    by_id = {t.id: t.outcome for t in r.tests}
    assert by_id['tests.test_sample::test_param[<x>-"q" & y]'] == "passed"
    assert by_id["tests.test_sample.TestGroup::test_method"] == "passed"
    assert by_id["tests.test_sample::test_error"] == "failed"  # <error>
    assert by_id["tests.test_sample::test_xfail"] == "skipped"
    assert [t.id for t in r.tests] == sorted((t.id for t in r.tests), key=str.encode)
    teardown = {t.id: t.outcome for t in parse("pytest-junit-teardown.xml").tests}
    assert teardown["tests.test_sample::test_teardown_error"] == "failed"
    assert teardown["tests.test_sample::test_xpass"] == "passed"
    assert teardown["tests.test_sample.TestGroup::test_7"] == "passed"


def test_several_hundred_real_tests_are_all_named() -> None:
    r = parse("pytest-large-junit.xml")
    assert len(r.tests) == 587
    ids = set(r.ids("passed"))
    assert len(ids) == 586  # every id distinct: nothing merged or dropped
    assert "tests.test_parse.ParserTests::test_7" in ids
    assert "tests.test_parse.ParserTests::test_79" in ids
    assert "tests.test_parse::test_base64_roundtrip[299]" in ids
    assert "tests.test_parse::test_sha256_hex[0]" in ids
    assert r.ids("skipped") == ["tests.test_parse::test_md5_remote"]


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
    sub = {t.id for t in parse("perl-subtests.tap").tests}
    assert sub == {"test_7", "test_sha256", "3", "group > inner one", "group > inner two"}
    nested = {t.id: t.outcome for t in parse("node-nested-junit.xml").tests}
    assert nested["test::test_7"] == "passed"  # two <testsuite>s deep
    assert nested["test::not yet"] == "skipped"
    bats = {t.id: t.outcome for t in parse("bats-junit.xml").tests}
    assert bats["sample.bats::fails on purpose"] == "failed"


def test_namespaced_junit_reads_like_the_plain_one() -> None:
    plain = parse("bats-junit.xml").tests
    assert parse("junit-namespaced.xml").tests == plain
    assert parse("junit-prefixed.xml").tests == plain


def test_passing_report_builds_and_drops_clocks(tmp_path: Path) -> None:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        'timestamp="2026-11-23T13:20:35.548659+00:00" hostname="vm" time="0.039">'
        '<testcase classname="t" name="b" time="0.001"/>'
        '<testcase classname="t" name="a" time="0.7"/>'
        "</testsuite></testsuites>"
    )
    built = normalise_text(tmp_path, xml, "junit")
    assert built.rc == 0, built.log
    assert built.written == (
        b'{"schema":"provenance-test-results/v1","format":"junit",'
        b'"counts":{"passed":2,"failed":0,"skipped":0},"tests":[\n'
        b'{"id":"t::a","outcome":"passed"},\n{"id":"t::b","outcome":"passed"}\n]}\n'
    )
    assert b"2026" not in built.written and b"vm" not in built.written
    assert "2026-11-23T13:20:35" in built.log  # timings stay in the log
    # The builder's own count line cannot pass for a runner's summary in the log.
    assert "mkTestCheck: normalised: 2 passed, 0 failed, 0 skipped" in built.log
    assert tr.parse_summary(built.log) is None


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        # truncated in the middle of a failing case: the failure must not vanish
        ('<testsuite><testcase name="a"/><testcase name="b"><failure>boom', "truncated"),
        ('<testsuite><testcase name="a"/></testsuite><testsuite/>', "after the root"),
        ('<testsuite><testcase name="a"></testsuite></testcase>', "closes"),
        ('<testsuite failures="2"><testcase name="a"/></testsuite>', "counts failures"),
        ('<testsuites errors="1"/>', "counts failures"),
        ('<testsuite><failure message="setup"/><testcase name="a"/></testsuite>', "outside"),
        ('<testsuite><testcase name="a"/><!-- cut', "truncated"),
        ('<testsuite><testcase name="a"', "truncated"),
    ],
)
def test_incomplete_junit_is_refused_by_both(tmp_path: Path, xml: str, why: str) -> None:
    with pytest.raises(AttestationError):
        tr.parse_report(xml.encode(), "junit")
    built = normalise_text(tmp_path, xml, "junit")
    assert built.rc == 2, built.log
    assert built.written == b""
    assert why in built.log


def test_a_todo_failure_inside_a_suite_is_not_a_failure(tmp_path: Path) -> None:
    # node writes a failing todo test as <skipped> + <failure>; the suite counts it in
    # failures="1". It is skipped, and the suite's count is accounted for.
    xml = (
        '<testsuites><testsuite name="s" failures="1"><testcase name="todo">'
        '<skipped type="todo"/><failure>1 !== 2</failure></testcase>'
        '<testcase name="ok"/></testsuite></testsuites>'
    )
    r = tr.parse_report(xml.encode(), "junit")
    assert (r.passed, r.failed, r.skipped) == (1, 0, 1)
    built = normalise_text(tmp_path, xml, "junit")
    assert built.rc == 0, built.log
    assert built.written == r.render()


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
    built = normalise_text(tmp_path, payload.decode(), "junit")
    assert built.rc == 2
    assert built.written == b""


def test_malformed_and_empty_reports_are_errors() -> None:
    with pytest.raises(AttestationError, match="not well-formed"):
        tr.parse_report(b"<testsuite><testcase name='a'>", "junit")
    with pytest.raises(AttestationError, match="no tests"):
        tr.parse_report(b"<testsuites/>", "junit")
    with pytest.raises(AttestationError, match="no test runner's summary"):
        tr.parse_report(b"all good\n", "summary")
    with pytest.raises(AttestationError, match="unknown report format"):
        tr.parse_report(b"", "xunit")
    with pytest.raises(AttestationError, match="not a provenance-test-results/v1"):
        tr.parse_results_json(b'{"schema":"other"}')
    forged = parse("bats-junit.xml").render().replace(b'"failed":1', b'"failed":0')
    with pytest.raises(AttestationError, match="not a provenance-test-results/v1"):
        tr.parse_results_json(forged)  # counts that contradict the listed tests


def test_verdicts() -> None:
    def res(p: int, f: int, s: int) -> str:
        return tr.TestResults("summary", (), p, f, s).result

    assert res(5, 0, 0) == tr.PASSED
    assert res(5, 0, 1) == tr.WARNED  # skipped tests: passed with a warning
    assert res(0, 0, 0) == tr.WARNED  # nothing ran: never PASSED
    assert res(5, 1, 0) == tr.FAILED
    assert tr.TestResults("summary", (), 147, 0, 0).summary_line() == "147 passed, 0 failed"


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
