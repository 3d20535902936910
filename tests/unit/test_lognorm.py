"""The normalised-log byproduct: clocks out, everything else kept."""

from __future__ import annotations

from provenance.attest import lognorm

RUN_A = b"""mkTestCheck: running: python -m pytest
============================= test session starts ==============================
platform linux -- Python 3.11.2, pytest-7.2.1, pluggy-1.0.0
started Mon Nov 23 13:21:52 UTC 2026 at 13:21:52.123
tests/test_calc.py ........                                              [100%]
<testsuite name="pytest" time="0.039" timestamp="2026-11-23T13:20:35.548659+00:00">
# duration_ms 111.711073
  duration_ms: 0.72
thread 'tests::fails' (12874) panicked at src/lib.rs:6:37
<object at 0x7f3a1c2b9e80> from /nix/store/0123456789abcdfghijklmnpqrsvwxyz-toolchain/bin
cwd /tmp/nix-build-calc-unit.drv-0/src
============================== 8 passed in 0.03s ===============================
test result: ok. 8 passed; 0 failed; finished in 12ms
"""

RUN_B = (
    RUN_A.replace(b"13:21:52", b"09:01:07")
    .replace(b"Mon Nov 23", b"Tue Dec  1")
    .replace(b'time="0.039"', b'time="1.5"')
    .replace(b"2026-11-23T13:20:35.548659+00:00", b"2027-01-02T03:04:05Z")
    .replace(b"111.711073", b"98.1")
    .replace(b"0.72", b"1.0")
    .replace(b"12874", b"99")
    .replace(b"0x7f3a1c2b9e80", b"0x55d0aa11bb22")
    .replace(b"0123456789abcdfghijklmnpqrsvwxyz", b"zyxwvsrqpnmlkjihgfdcba9876543210")
    .replace(b"/tmp/nix-build-calc-unit.drv-0", b"/build")
    .replace(b"0.03s", b"4.71s")
    .replace(b"12ms", b"3ms")
)


def test_two_honest_runs_normalise_to_the_same_bytes() -> None:
    assert RUN_A != RUN_B
    assert lognorm.normalise(RUN_A) == lognorm.normalise(RUN_B)
    assert lognorm.normalised_sha256(RUN_A) == lognorm.normalised_sha256(RUN_B)


def test_what_is_kept() -> None:
    out = lognorm.normalise(RUN_A).decode()
    assert "8 passed in <duration>" in out
    assert "Python 3.11.2, pytest-7.2.1" in out  # versions are not clocks
    assert "tests/test_calc.py ........" in out
    assert "src/lib.rs:6:37" in out  # file:line:col is not a time of day
    assert "/nix/store/<hash>-toolchain/bin" in out
    assert 'time="<duration>" timestamp="<timestamp>"' in out
    assert "started <date> at <time>" in out


def test_a_different_result_changes_the_digest() -> None:
    failing = RUN_A.replace(b"8 passed in", b"7 passed, 1 failed in")
    assert lognorm.normalised_sha256(failing) != lognorm.normalised_sha256(RUN_A)


def test_non_utf8_bytes_survive() -> None:
    assert lognorm.normalise(b"\xff\xfe 0.5s") == b"\xff\xfe <duration>"
