"""The fuzz harness's session hooks: a watchdog per test, and how many inputs ran.

`bounded` (harness.py) stops a call that runs over its time with SIGALRM, which Python
only sees between bytecodes; a hang inside C code (a regex, a decoder) would never get
there. The watchdog below covers that: a fuzz test that runs for WATCHDOG_SECONDS dumps
every thread's stack and exits the run, so CI fails instead of waiting forever.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time
from collections.abc import Iterator

import pytest

from tests.fuzz import harness

WATCHDOG_SECONDS = float(os.environ.get("PROVENANCE_FUZZ_WATCHDOG_SECONDS", "600"))
_wall = [0.0]  # seconds spent in fuzz tests (setup and hypothesis included)


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    start = time.perf_counter()
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        _wall[0] += time.perf_counter() - start


def pytest_sessionfinish(session: pytest.Session) -> None:
    if harness.FAILURES:  # PROVENANCE_FUZZ_KEEP_GOING let them pass one by one: not the run
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    total = sum(harness.RUNS.values())
    if not total:
        return
    wall = _wall[0]
    tr = terminalreporter
    tr.write_sep("-", "fuzz harness")
    slowest = sorted(harness.SECONDS.items(), key=lambda kv: -kv[1])[:5]
    for target, runs in sorted(harness.RUNS.items()):
        tr.write_line(f"  {target:<28} {runs:>6} inputs  {harness.SECONDS[target]:6.2f} s in calls")
    if harness.FAILURES:
        tr.write_line(f"fuzz: CRASHES (kept going): {dict(harness.FAILURES)}", red=True)
    tr.write_line(
        f"fuzz: {total} inputs over {len(harness.RUNS)} targets in {wall:.1f} s "
        f"(max_examples={harness.EXAMPLES} per test, PROVENANCE_FUZZ_EXAMPLES; "
        f"slowest: {', '.join(f'{t} {s:.1f} s' for t, s in slowest)})"
    )
