"""bundle.read_pairs on inputs that are not bundle files: one clear error, never a hang."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from provenance.errors import AttestationError, UsageError
from provenance.formats import bundle


def test_device_is_refused_without_reading(tmp_path: Path) -> None:
    # /dev/zero reports size 0 and never ends: reading it whole was a MemoryError.
    with pytest.raises(UsageError, match="/dev/zero is not a regular file"):
        bundle.read_pairs(Path("/dev/zero"))


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.intoto.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            bundle.read_pairs(fifo)
        except BaseException as e:
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader so the test run can end
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], UsageError)
    assert "is not a regular file" in outcome[0].message


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"bundle .* is a directory"):
        bundle.read_pairs(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        bundle.read_pairs(tmp_path / "nope")


def test_reads_at_most_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.intoto.jsonl"
    big.write_bytes(b"\n" * 101)
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", 100)
    with pytest.raises(AttestationError, match="over the 100-byte limit"):
        bundle.read_pairs(big)
