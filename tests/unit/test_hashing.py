"""NAR hashing against nix's own serialiser, and narHash encodings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provenance.errors import StoreReadError
from provenance.formats.hashing import (
    nar_bytes,
    nar_sha256,
    nix32_decode,
    sha256_hex,
    sha256_to_hex,
)


def _tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "sub" / "b").write_bytes(b"\x00" * 13)
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    exe = root / "run.sh"
    exe.write_text("#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    os.symlink("a.txt", root / "link")
    (root / "Z-upper").write_text("sorted before lowercase in byte order\n")
    return root


@pytest.mark.nix
def test_nar_matches_nix_store_dump(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    for target in (root, root / "a.txt", root / "run.sh", root / "link", root / "sub"):
        dumped = subprocess.run(
            ["nix-store", "--dump", str(target)], capture_output=True, check=True
        ).stdout
        assert nar_bytes(target) == dumped, target
        assert nar_sha256(target) == sha256_hex(dumped)


@pytest.mark.nix
def test_a_tree_deeper_than_the_recursion_limit_hashes_as_nix_dumps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys  # noqa: PLC0415

    root = tmp_path / "deep"
    depth = sys.getrecursionlimit() + 500  # the recursive serialiser died here
    where = root
    for i in range(depth):
        where = where / "d"
        if i % 300 == 0:
            where.mkdir(parents=True)
            (where / "f").write_text(str(i))
    where.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # keep the paths nix-store sees short
    try:
        dumped = subprocess.run(
            ["nix-store", "--dump", "deep"], capture_output=True, check=True
        ).stdout
        assert nar_sha256(root) == sha256_hex(dumped)
    finally:
        # shutil.rmtree recurses too: pytest's own clean-up of old temp dirs would die on it.
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_an_unreadable_output_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(StoreReadError, match=r"cannot read .*missing to hash it"):
        nar_sha256(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StoreReadError, match="special file"):
        nar_sha256(tmp_path / "fifo")


@pytest.mark.nix
def test_nar_hash_changes_with_the_executable_bit(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    before = nar_sha256(f)
    f.chmod(0o755)
    assert nar_sha256(f) != before


@pytest.mark.nix
def test_sha256_to_hex_agrees_with_nix_hash_to_base16(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("some content\n")
    sri = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "hash", "path", str(f)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    b32 = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "hash", "path", "--base32", str(f)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    hex_ = nar_sha256(f)
    assert sha256_to_hex(sri) == hex_
    assert sha256_to_hex(f"sha256:{b32}") == hex_
    assert sha256_to_hex(b32) == hex_
    assert sha256_to_hex(hex_) == hex_


def test_nix32_rejects_bad_characters() -> None:
    with pytest.raises(ValueError, match="invalid nix base-32"):
        nix32_decode("e" * 52)  # 'e' is not in nix's alphabet


def test_sha256_to_hex_rejects_other_algorithms_and_lengths() -> None:
    with pytest.raises(ValueError):
        sha256_to_hex("sha512-" + "A" * 88)
    with pytest.raises(ValueError):
        sha256_to_hex("abc")
