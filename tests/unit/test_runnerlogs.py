"""Only a test runner's own summary counts: the shapes, the traps, and the awk twin.

Every case runs through the Python scanner (provenance/runnerlogs.py) and through the
sandbox's normaliser (format "summary"), which must give the same counts or both refuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.attest import runnerlogs, testresults
from provenance.errors import AttestationError
from tests.unit.normaliser import normalise_text

NONE = "no summary"
REFUSE = "refused"
PER_TEST = "".join(
    f"tests.test_parse.ParserTests::test_{i} passed\n" for i in range(1, 8)
)  # one line per test, the last one ending in a 7

CASES: dict[str, tuple[str, tuple[int, int, int] | str]] = {
    # the traps: numbers inside test ids and prose are not counts
    "digits in test ids": (PER_TEST, NONE),
    "a digit before the word": ("test_sha256 passed\ntest_base64 failed\ntest_md5 passed\n", NONE),
    "prose in a text file": ("NOTES: the parser now has 120 passed checks\n", NONE),
    "a later line after pytest's summary": (
        "=================== 1 failed, 1 passed in 0.02s ===================\n"
        "re-ran flaky: test_retry_2 passed\n",
        (1, 1, 0),
    ),
    "pytest -q form": ("3 passed, 1 skipped, 2 deselected in 0.10s\n", (3, 0, 3)),
    "pytest with colours": (
        "\x1b[32m===== \x1b[1m5 passed\x1b[0m in 1.20s =====\x1b[0m\n",
        (5, 0, 0),
    ),
    "pytest's long runs": ("==== 2 passed, 1 warning in 61.20s (0:01:01) ====\n", (2, 0, 0)),
    "pytest no tests ran": ("============ no tests ran in 0.01s ============\n", (0, 0, 0)),
    "pytest subtests are not tests": ("2 passed, 3 subtests passed in 0.05s\n", (2, 0, 0)),
    "pytest-shaped prose": ("3 apples, 2 pears in 0.5s\n", NONE),
    "two pytest sessions add up": (
        "=== 3 passed in 0.1s ===\n=== 2 passed in 0.2s ===\n",
        (5, 0, 0),
    ),
    "unittest needs its verdict": ("Ran 4 tests in 0.001s\n\nall done\n", NONE),
    "unittest OK": ("Ran 4 tests in 0.001s\n\nOK (skipped=1, expected failures=1)\n", (2, 0, 2)),
    "cargo's binaries add up": (
        "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n"
        "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.01s\n",
        (5, 0, 2),
    ),
    "cargo FAILED without a failed test": (
        "test result: FAILED. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        REFUSE,
    ),
    "jest": ("Tests:       1 skipped, 9 passed, 10 total\n", (9, 0, 1)),
    "jest that does not add up": ("Tests:       9 passed, 12 total\n", REFUSE),
    "gotestsum": ("DONE 12 tests, 2 skipped in 0.503s\n", (10, 0, 2)),
    "go test ok lines are not TAP": (
        "ok  \texample.com/a\t0.01s\nok  \texample.com/b\t(cached)\n",
        NONE,
    ),
    "go test FAIL is a failure nobody counted": (
        "--- FAIL: TestX (0.00s)\nFAIL\texample.com/a\t0.01s\n",
        REFUSE,
    ),
    "a plain line alone": ("running\n  12 passed, 0 failed  \n", (12, 0, 0)),
    "a plain line inside prose": ("so far 12 passed, 0 failed\n", NONE),
    "two plain lines: running totals or batches?": (
        "1 passed, 0 failed\n2 passed, 0 failed\n",
        REFUSE,
    ),
    "TAP with a plan": ("1..3\nok 1 a\nnot ok 2 b # TODO later\nok 3 c # skip slow\n", (1, 0, 2)),
    "TAP plan at the end": ("ok 1 a\nok 2 b\n1..2\n", (2, 0, 0)),
    "TAP that stops early": ("1..4\nok 1 a\nok 2 b\n", REFUSE),
    "ok lines without a plan are not TAP": ("ok 1 fine\nok so far\n", NONE),
    "not ok without a plan is a failure": ("ok 1 a\nnot ok 2 b\n", REFUSE),
    "TAP that bails out": ("1..3\nok 1 a\nBail out! db down\n", REFUSE),
    "two TAP streams add up": ("1..1\nok 1 a\n1..2\nok 1 b\nnot ok 2 c\n", (2, 1, 0)),
    "a prove-like header before TAP, but no prove summary": (
        "t/basic.t .. \n1..2\nok 1 a\nok 2 b\n",
        (2, 0, 0),
    ),
    "prove -v: the TAP it ran is counted once": (
        "t/a.t .. \n1..2\nok 1 a\nok 2 b\nok\nAll tests successful.\n"
        "Files=1, Tests=2,  0 wallclock secs ( 0.01 usr +  0.00 sys =  0.01 CPU)\nResult: PASS\n",
        (2, 0, 0),
    ),
    "node's counters stand for the TAP before them": (
        "TAP version 13\nok 1 - a\nok 2 - b\n1..2\n# tests 3\n# suites 0\n# pass 3\n# fail 0\n"
        "# cancelled 0\n# skipped 0\n# todo 0\n# duration_ms 4.2\n",
        (3, 0, 0),
    ),
    "node's counters that do not add up": ("# tests 5\n# pass 2\n# fail 0\n", REFUSE),
    "an older mkTestCheck's own lines are not the runner's": (
        "mkTestCheck: running: pytest\n=== 2 passed in 0.1s ===\n"
        "mkTestCheck: --- raw tap report report.tap ---\n1..2\nok 1 a\nok 2 b\n\n"
        "mkTestCheck: --- end of raw report ---\n2 passed, 0 failed, 0 skipped\n"
        "mkTestCheck: results in /nix/store/x/results.json\n",
        (2, 0, 0),
    ),
    "bats pretty": ("3 tests, 0 failures, 1 skipped in 2 seconds\n", (2, 0, 1)),
    "bats with tests not run": ("3 tests, 0 failures, 2 not run\n", REFUSE),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_and_sandbox_read_the_same_summary(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    built = normalise_text(tmp_path, text)
    if expected == REFUSE:
        with pytest.raises(AttestationError):
            testresults.parse_summary(text)
        assert built.rc == 2, built.log
        assert built.written == b""
        return
    if expected == NONE:
        assert testresults.parse_summary(text) is None
        assert built.rc == 2 and "no test runner's summary" in built.log, built.log
        return
    assert testresults.parse_summary(text) == expected
    assert isinstance(expected, tuple)
    assert built.rc == (1 if expected[1] else 0), built.log
    results = testresults.parse_results_json(built.written)
    assert (results.passed, results.failed, results.skipped) == expected


def test_the_log_keeps_every_tally_and_says_where() -> None:
    log = runnerlogs.scan(
        "=== 2 passed in 0.1s ===\n"
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out\n"
    )
    assert [(t.runner, t.line) for t in log.tallies] == [("pytest", 1), ("cargo", 2)]
    assert (log.passed, log.failed, log.skipped, log.deselected) == (3, 0, 0, 3)
    assert log.exact
    assert "cargo (line 2): 1 passed, 0 failed, 3 deselected" in log.describe()
    node = runnerlogs.scan("\u2139 tests 1\n\u2139 pass 1\n\u2139 fail 0\n")
    assert not node.exact  # node counts parent tests: compared with a report on failures only
