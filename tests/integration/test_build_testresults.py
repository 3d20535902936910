"""Test results that are the truth, end to end: real checks built by real Nix.

Every trap of issue 18 is a check in a busybox fixture flake, built by `provenance
build`: numbers inside test ids, text files, a line after the runner's summary,
truncated and namespaced JUnit, a log that contradicts the report, cargo's several
summaries, declared reports, and a suite of several hundred real tests run in the
sandbox through mkTestCheck, whose statement must carry the exact number and the names.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.attest import testresults as tr
from provenance.cli import app
from provenance.doors.nix import current_system
from tests.conftest import make_flake, run

pytestmark = pytest.mark.nix
ROOT = Path(__file__).parent.parent.parent
REPORTS = ROOT / "tests" / "fixtures" / "reports"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
SLSA = "https://slsa.dev/provenance/v1"

# Scripts run by the checks (`busybox sh $src/NAME`); only busybox is on PATH.
SCRIPTS = {
    "later_line.sh": """
echo "=================== 1 failed, 1 passed in 0.02s ==================="
echo "re-ran flaky: test_retry_2 passed"
busybox mkdir -p $out
""",
    "truncated.sh": "busybox mkdir -p $out; busybox cp $src/truncated.xml $out/junit.xml\n",
    "disagree.sh": """
busybox mkdir -p $out
busybox cp $src/pass3.xml $out/junit.xml
echo "============================== 5 passed in 0.10s =============================="
""",
    "notes.sh": """
busybox mkdir -p $out
echo "the parser now has 120 passed checks" > $out/NOTES.txt
echo "3 passed, 2 failed" > $out/results.txt
""",
    "suite_counts.sh": "busybox mkdir -p $out; busybox cp $src/suite-counts.xml $out/junit.xml\n",
    "go_fail.sh": """
echo "--- FAIL: TestParse (0.00s)"
printf 'FAIL\\texample.com/parse\\t0.012s\\n'
busybox mkdir -p $out
""",
    "empty_out.sh": "busybox mkdir -p $out\n",
    "tap_short.sh": "busybox mkdir -p $out; busybox cp $src/plan-short.tap $out/results.tap\n",
    "per_test.sh": """
i=1
while [ $i -le 7 ]; do echo "tests.test_parse.ParserTests::test_$i passed"; i=$((i + 1)); done
echo "test_sha256 passed"
echo "test_base64 failed"
echo "test_md5 passed"
busybox mkdir -p $out
echo "the parser now has 120 passed checks" > $out/NOTES.txt
echo "3 passed, 2 failed" > $out/results.txt
""",
    "namespaced.sh": "busybox mkdir -p $out; busybox cp $src/namespaced.xml $out/junit.xml\n",
    "cargo.sh": "busybox cat $src/cargo-ok.txt; busybox mkdir -p $out\n",
    # A real pytest run of 587 tests, replayed: its terminal output and its JUnit report.
    "pytest_large.sh": """
busybox cat $src/pytest-large-verbose.txt
busybox mkdir -p $out
busybox cp $src/pytest-large-junit.xml $out/junit.xml
""",
    "deep.sh": """
busybox mkdir -p $out/reports
busybox cp $src/pass3.xml $out/reports/junit.xml
busybox cp $src/failing.xml $out/junit.xml
""",
    # A real suite in the sandbox: busybox's expr and sha256sum against the shell's own
    # arithmetic and a length check, 600 tests, one JUnit case and one log line each.
    "large.sh": """
pass=0
fail=0
{
echo '<?xml version="1.0" encoding="UTF-8"?>'
echo '<testsuites><testsuite name="tests.test_parse">'
i=1
while [ $i -le 600 ]; do
  if [ $i -le 400 ]; then
    name="test_$i"
    got=$(busybox expr $i \\* $i + 7)
    want=$((i * i + 7))
  else
    name="test_sha256_$i"
    got=$(printf '%s' "$i" | busybox sha256sum | busybox cut -d' ' -f1 | busybox wc -c)
    want=65
  fi
  if [ "$got" = "$want" ]; then
    echo "  <testcase classname=\\"tests.test_parse.ParserTests\\" name=\\"$name\\"/>"
    echo "tests.test_parse.ParserTests::$name passed" >&2
    pass=$((pass + 1))
  else
    echo "  <testcase classname=\\"tests.test_parse.ParserTests\\" name=\\"$name\\"><failure/></testcase>"
    echo "tests.test_parse.ParserTests::$name failed" >&2
    fail=$((fail + 1))
  fi
  i=$((i + 1))
done
echo '</testsuite></testsuites>'
} > report.xml
echo "$pass passed, $fail failed"
""",
}

PASS3 = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="parse" tests="3">\n'
    '<testcase classname="tests.test_parse" name="test_7"/>\n'
    '<testcase classname="tests.test_parse" name="test_sha256"/>\n'
    '<testcase classname="tests.test_parse" name="test_base64"/>\n'
    "</testsuite></testsuites>\n"
)
NAMESPACED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<testsuites xmlns="urn:example:junit"><testsuite name="parse" tests="2">\n'
    '<testcase classname="ns" name="test_7"/><testcase classname="ns" name="test_md5"/>\n'
    "</testsuite></testsuites>\n"
)
PREFIXED = (
    '<?xml version="1.0"?>\n<j:testsuites xmlns:j="urn:example:junit">'
    '<j:testsuite name="p"><j:testcase classname="pre" name="test_1"/>'
    '<j:testcase classname="pre" name="test_2"><j:skipped/></j:testcase>'
    "</j:testsuite></j:testsuites>\n"
)

FILES = {
    "truncated.xml": (REPORTS / "bad" / "pytest-junit-truncated.xml").read_text(),
    "suite-counts.xml": (REPORTS / "bad" / "junit-suite-counts-failures.xml").read_text(),
    "plan-short.tap": (REPORTS / "bad" / "perl-plan-short.tap").read_text(),
    "cargo-ok.txt": (REPORTS / "cargo-ok.txt").read_text(),
    "pytest-large-verbose.txt": (REPORTS / "pytest-large-verbose.txt").read_text(),
    "pytest-large-junit.xml": (REPORTS / "pytest-large-junit.xml").read_text(),
    "failing.xml": (REPORTS / "pytest-junit.xml").read_text(),
    "pass3.xml": PASS3,
    "namespaced.xml": NAMESPACED,
    "prefixed.xml": PREFIXED,
}


def check(name: str, script: str, extra: str = "") -> str:
    return f'{name} = mk "{name}" "busybox sh $src/{script}" {{ src = tests; {extra} }};'


def mk_test_check(name: str, command: str, fmt: str, salt: str) -> str:
    return (
        f'{name} = lib.mkTestCheck {{ name = "{name}"; system = "{current_system()}"; '
        f'src = tests; toolchain = tools; command = "{command}"; format = "{fmt}"; '
        f'report = "report.xml"; env = {{ salt = "{salt}"; }}; }};'
    )


def flake_with(tmp_path: Path, checks: list[str]) -> Path:
    salt = uuid.uuid4().hex
    body = "\n    ".join(c.replace("@SALT@", salt) for c in checks)
    extra = f"""{{ mk, tests }}:
  let
    lib = import ./nix/lib.nix;
    tools = builtins.path {{ path = ./tools; name = "bootstrap-tools"; }};
  in {{
    {body}
  }}
"""
    repo = make_flake(tmp_path / "repo", extra_checks=extra, commit=False)
    for name, text in {**SCRIPTS, **FILES}.items():
        (repo / "tests" / name).write_text(text.lstrip("\n"))
    (repo / "nix").mkdir()
    for f in ("lib.nix", "check-builder.sh", "normalise-results.awk"):
        shutil.copy2(ROOT / "nix" / f, repo / "nix" / f)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "-m", "checks"], cwd=repo)
    return repo


def build(repo: Path, key: Path) -> tuple[int, str, list[dict[str, Any]]]:
    result = CliRunner().invoke(app, ["build", str(repo), "--key", str(key), "--no-note"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    bundles = list((repo / ".provenance").glob("*.intoto.jsonl"))
    stmts = [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for b in bundles
        for line in b.read_text().splitlines()
        if line.strip()
    ]
    return result.exit_code, result.stderr, stmts


def attested(stmts: list[dict[str, Any]]) -> set[str]:
    return {
        s["predicate"]["buildDefinition"]["externalParameters"]["check"]
        for s in stmts
        if s["predicateType"] == SLSA
    }


def results_by_check(stmts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """check name -> its test-result predicate."""
    return {
        s["predicate"]["configuration"][0]["annotations"]["check"]: s["predicate"]
        for s in stmts
        if s["predicateType"] == TEST_RESULT
    }


def test_results_that_cannot_be_trusted_fail_the_check(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = flake_with(
        tmp_path,
        [
            check("laterline", "later_line.sh"),
            check("truncated", "truncated.sh"),
            check("disagree", "disagree.sh"),
            check("declaredtxt", "notes.sh", 'testReport = "results.txt";'),
            check("suitecounts", "suite_counts.sh"),
            check("gofail", "go_fail.sh"),
            check("declaredmissing", "empty_out.sh", 'testReport = "reports/junit.xml";'),
            check("tapshort", "tap_short.sh"),
        ],
    )
    code, err, stmts = build(repo, keypair[0])
    assert code == 1, err
    failed = {
        "laterline": "its test results report 1 passed, 1 failed)",
        "truncated": "/junit.xml: the JUnit report is not well-formed XML",
        "disagree": "/junit.xml says 3 passed, 0 failed but the build log's runner summary says "
        "5 passed",
        "declaredtxt": "its test results report 3 passed, 2 failed)",
        "suitecounts": "counts failures=1 errors=0 but none of its test cases failed",
        "gofail": "the tests failed but no summary counts a failed test: go (line",
        "declaredmissing": "declares testReport = 'reports/junit.xml' but",
        "tapshort": "/results.tap: the TAP report is incomplete: its plan 1..5",
    }
    for name, why in failed.items():
        line = next((ln for ln in err.splitlines() if ln.startswith(f"{name}: FAILED (")), "")
        assert why in line, f"{name}: {line or err}"
    # Nothing is signed for any of them, PASSED or otherwise; the honest checks are.
    assert attested(stmts) == {"det", "chain"}
    assert set(results_by_check(stmts)) == {"det"}
    assert "check(s) failed: " in err


def test_only_what_a_runner_counted_is_signed(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    repo = flake_with(
        tmp_path,
        [
            check("pertest", "per_test.sh"),
            check("namespaced", "namespaced.sh"),
            check("cargo", "cargo.sh"),
            check("deep", "deep.sh", 'testReport = "reports/junit.xml";'),
            check("pytestlarge", "pytest_large.sh"),
        ],
    )
    code, err, stmts = build(repo, keypair[0])
    assert code == 0, err
    assert attested(stmts) == {
        "det", "chain", "pertest", "namespaced", "cargo", "deep", "pytestlarge"
    }  # fmt: skip
    results = results_by_check(stmts)
    # Numbers inside test ids and text files are no counts: no claim about tests at all.
    assert "pertest" not in results
    assert "pertest: no test report and no runner summary: no test-result statement" in err
    # A namespaced JUnit report parses, ids listed.
    ns = results["namespaced"]
    assert ns["result"] == "PASSED"
    assert ns["passedTests"] == ["ns::test_7", "ns::test_md5"]
    # cargo prints one summary per test binary: 2 + 2 + 1 passed, 1 ignored.
    cargo = results["cargo"]["configuration"][2]["annotations"]
    assert (cargo["passed"], cargo["failed"], cargo["skipped"]) == (5, 0, 1)
    assert results["cargo"]["result"] == "WARNED"
    assert results["cargo"]["configuration"][2]["name"] == "build log"
    # The declared report wins over the failing one found at the top of the output.
    deep = results["deep"]
    assert deep["result"] == "PASSED"
    assert deep["configuration"][2]["name"].endswith("/reports/junit.xml")
    # 587 real pytest tests: pytest's summary in the log and its JUnit report agree, and
    # the statement names every test (the per-test lines, `...::test_79 PASSED`, are no count).
    large = results["pytestlarge"]
    counts = large["configuration"][2]["annotations"]
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (586, 0, 1)
    assert large["result"] == "WARNED"
    assert len(set(large["passedTests"])) == 586
    assert "tests.test_parse.ParserTests::test_7" in large["passedTests"]
    assert large["warnedTests"] == ["tests.test_parse::test_md5_remote"]
    assert sorted(deep["passedTests"]) == [
        "tests.test_parse::test_7",
        "tests.test_parse::test_base64",
        "tests.test_parse::test_sha256",
    ]


def test_mktestcheck_in_the_sandbox(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    salt = "@SALT@"
    repo = flake_with(
        tmp_path,
        [
            mk_test_check("large", "sh large.sh", "junit", salt),
            mk_test_check("prefixed", "cp prefixed.xml report.xml", "junit", salt),
            mk_test_check("mktruncated", "cp truncated.xml report.xml", "junit", salt),
            mk_test_check("mklaterline", "sh later_line.sh", "summary", salt),
        ],
    )
    code, err, stmts = build(repo, keypair[0])
    assert code == 1, err
    assert "check(s) failed: mklaterline, mktruncated" in err
    assert attested(stmts) == {"det", "chain", "large", "prefixed"}
    results = results_by_check(stmts)
    # Several hundred real tests: the exact number, every name.
    large = results["large"]
    assert large["result"] == "PASSED"
    counts = large["configuration"][2]["annotations"]
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (600, 0, 0)
    assert large["configuration"][2]["name"].endswith("/results.json")  # the declared report
    names = large["passedTests"]
    assert len(names) == len(set(names)) == 600
    assert "tests.test_parse.ParserTests::test_7" in names
    assert "tests.test_parse.ParserTests::test_400" in names
    assert "tests.test_parse.ParserTests::test_sha256_600" in names
    assert large["failedTests"] == []
    prefixed = results["prefixed"]
    assert prefixed["result"] == "WARNED"
    assert prefixed["passedTests"] == ["pre::test_1"]
    assert prefixed["warnedTests"] == ["pre::test_2"]


@pytest.mark.parametrize(
    ("attrs", "declared"),
    [
        ('testReport = "reports/junit.xml";', ["reports/junit.xml"]),
        ('testReport = [ "a.xml" "b \\"c.xml" ];', ["a.xml", "b", '"c.xml']),
        ('__structuredAttrs = true; testReport = [ "a.xml" "b c.xml" ];', ["a.xml", "b c.xml"]),
        ('__structuredAttrs = true; testReport = "r.tap";', ["r.tap"]),
        ('note = "(\\"testReport\\",\\"x\\")";', []),  # the literal inside another value
    ],
)
def test_the_declaration_is_read_from_the_real_drv(attrs: str, declared: list[str]) -> None:
    expr = (
        f'derivation {{ name = "decl"; system = "{current_system()}"; builder = "/bin/sh"; '
        f"{attrs} }}"
    )
    drv = run(["nix-instantiate", "--expr", expr]).stdout.strip()
    assert tr.declared_reports(drv) == declared
