"""Note lines are anyone's to push: a hostile one must not crash those who read them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provenance.formats import keys
from tests.conftest import git

pytestmark = pytest.mark.nix


def _prov(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_a_deeply_nested_note_line_crashes_neither_build_nor_verify(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    keyid = keys.load_signer(key).keyid
    # Carries the signer's keyid, so readers cannot skip it on that hint alone.
    hostile = '{"keyid":"' + keyid + '","x":' + "[" * 100_000 + "\n"
    head = git(flake, "rev-parse", "HEAD")
    subprocess.run(
        ["git", "notes", "--ref", "refs/notes/provenance", "add", "-F", "-", head],
        input=hostile,
        text=True,
        cwd=flake,
        check=True,
    )

    built = _prov("build", "--key", str(key), "--check", "det", ".", cwd=flake)
    assert built.returncode == 0, built.stderr
    assert "Traceback" not in built.stderr and "RecursionError" not in built.stderr
    note = git(flake, "notes", "--ref", "refs/notes/provenance", "show", head)
    assert "[" * 1000 in note  # the hostile line is kept (notes are a union), ours added

    verified = _prov("verify", "--trusted-key", str(pub), "--check", "det", cwd=flake)
    assert "Traceback" not in verified.stderr and "RecursionError" not in verified.stderr
    assert verified.returncode == 0, verified.stderr
