"""buildlog.py: a log file is read only when it is surely this build's, as `nix log` prints it.

What must hold: the name and order `nix log` uses (split directory before flat, plain
before .bz2), a log older than the build is never taken for it, an unreadable or broken
file sends the caller to `nix log`, and anything that moves the store or its logs (a
--store, a `store` setting, a daemon, NIX_* variables) turns the direct read off.
"""

from __future__ import annotations

import bz2
import os
import time
from pathlib import Path

import pytest

from provenance.doors.buildlog import default_local_store, fresh_log

DRV = "/nix/store/abcdefghijklmnopqrstuvwxyz012345-check.drv"


def _write(log_dir: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    path = log_dir / "drvs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_reads_this_builds_log_compressed_or_plain(tmp_path: Path) -> None:
    since = time.time() - 1
    _write(tmp_path, "ab/cdefghijklmnopqrstuvwxyz012345-check.drv.bz2", bz2.compress(b"4 passed\n"))
    assert fresh_log(DRV, since, str(tmp_path)) == b"4 passed\n"
    # nix log reads the plain file first when both exist
    _write(tmp_path, "ab/cdefghijklmnopqrstuvwxyz012345-check.drv", b"plain\n")
    assert fresh_log(DRV, since, str(tmp_path)) == b"plain\n"


def test_the_flat_directory_is_tried_after_the_split_one(tmp_path: Path) -> None:
    since = time.time() - 1
    _write(tmp_path, "abcdefghijklmnopqrstuvwxyz012345-check.drv", b"flat\n")
    assert fresh_log(DRV, since, str(tmp_path)) == b"flat\n"


def test_an_older_builds_log_is_not_this_one(tmp_path: Path) -> None:
    since = time.time()
    _write(
        tmp_path,
        "ab/cdefghijklmnopqrstuvwxyz012345-check.drv.bz2",
        bz2.compress(b"old\n"),
        since - 60,
    )
    assert fresh_log(DRV, since, str(tmp_path)) is None  # the caller asks `nix log`
    # ...and a stale first candidate hides a fresh later one, as it does for `nix log`
    _write(tmp_path, "abcdefghijklmnopqrstuvwxyz012345-check.drv", b"flat\n")
    assert fresh_log(DRV, since, str(tmp_path)) is None


def test_no_log_or_a_broken_one_sends_the_caller_to_nix(tmp_path: Path) -> None:
    since = time.time() - 1
    assert fresh_log(DRV, since, str(tmp_path)) is None
    _write(tmp_path, "ab/cdefghijklmnopqrstuvwxyz012345-check.drv.bz2", b"not bzip2")
    assert fresh_log(DRV, since, str(tmp_path)) is None


@pytest.mark.parametrize(
    ("override", "setting", "local", "env"),
    [
        ("/tmp/chroot", "auto", True, {}),  # --store: a chroot store keeps logs in its root
        (None, "/tmp/chroot", True, {}),  # the same, from nix.conf (2.8 calls it "local")
        (None, "daemon", False, {}),  # the daemon writes its own logs
        (None, "auto", False, {}),  # auto chose the daemon
        (None, "auto", True, {"NIX_LOG_DIR": "/elsewhere"}),
        (None, "auto", True, {"NIX_STATE_DIR": "/elsewhere"}),
        (None, "auto", True, {"NIX_REMOTE": "daemon"}),
        (None, "auto", True, {"NIX_STORE_DIR": "/elsewhere"}),
    ],
)
def test_anything_that_moves_the_logs_turns_the_direct_read_off(
    override: str | None, setting: str, local: bool, env: dict[str, str]
) -> None:
    assert not default_local_store(override, setting, local, env)


def test_the_default_local_store_reads_directly() -> None:
    assert default_local_store(None, "auto", True, {"PATH": "/bin"})
    assert default_local_store(None, "local", True, {"NIX_LOG_DIR": ""})
