"""A nix killed by a signal is named as killed, by which signal (real nix, `ulimit -f`).

Nix dies of SIGXFSZ when it copies the flake's source into the store past a file-size
limit; it prints nothing, so the message used to be "evaluating the flake failed: no
error message".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_flake

pytestmark = pytest.mark.nix


def test_a_file_size_limit_kills_nix_and_says_so(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")  # its busybox (~1 MB) is past a 64 KiB limit
    key, _ = keypair
    # Python ignores SIGXFSZ itself; subprocess gives nix the default action back.
    script = 'ulimit -f 64; exec "$@"'
    done = subprocess.run(
        [
            "bash",
            "-c",
            script,
            "-",
            sys.executable,
            "-m",
            "provenance",
            "build",
            "--key",
            str(key),
            str(repo),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PROVENANCE_LEDGER": "off"},
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert "nix was killed by SIGXFSZ (25)" in done.stderr
    assert "ulimit -f" in done.stderr
    assert "no error message" not in done.stderr and "Traceback" not in done.stderr
