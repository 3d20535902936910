"""The pytest example's toolchain pin: what `build-toolchain.sh --check` says when the
Debian archive moves, and that re-pinning is one command.

A moved archive is simulated offline: a cache of the real .debs in which one package is
repacked under a newer version, as a Debian security update would publish it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run
from tests.integration.conftest import EXAMPLE

MOVED = "zlib1g"


@pytest.fixture
def pinned(pinned_example: Path) -> Path:
    """The session's copy of the example, pinned to what the archive serves today."""
    return pinned_example


def script(example: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NIX_CONFIG": "experimental-features = nix-command flakes",
        "PROVENANCE_DEB_CACHE": str(cache),
    }
    return subprocess.run(
        [str(example / "build-toolchain.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def pinned_version(example: Path, package: str) -> str:
    m = re.search(rf'"{re.escape(package)}=([^"]+)"', (example / "toolchain.nix").read_text())
    assert m, f"{package} is not listed in toolchain.nix"
    return m.group(1)


def moved_cache(dest: Path, package: str, version: str) -> Path:
    """The example's .debs, with `package` repacked as `version`."""
    dest.mkdir()
    for deb in (EXAMPLE / ".debs").glob("*.deb"):
        if not deb.name.startswith(f"{package}_"):
            (dest / deb.name).symlink_to(deb)
    (original,) = (EXAMPLE / ".debs").glob(f"{package}_*.deb")
    unpacked = dest.parent / "unpacked"
    run(["dpkg-deb", "-R", str(original), str(unpacked)])
    control = unpacked / "DEBIAN" / "control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    arch = original.name.rsplit("_", 1)[1]
    run(
        [
            "dpkg-deb",
            "--root-owner-group",
            "-b",
            str(unpacked),
            str(dest / f"{package}_{version.replace(':', '%3a')}_{arch}"),
        ]
    )
    shutil.rmtree(unpacked)
    return dest


def copy_pin(pinned: Path, dest: Path) -> Path:
    shutil.copytree(pinned, dest, ignore=shutil.ignore_patterns("toolchain", ".debs"))
    return dest


@pytest.mark.nix
def test_a_moved_package_is_named_with_the_command_to_re_pin(pinned: Path, tmp_path: Path) -> None:
    old = pinned_version(pinned, MOVED)
    new = f"{old}+test1"
    cache = moved_cache(tmp_path / "debs", MOVED, new)
    example = copy_pin(pinned, tmp_path / "calc")

    drift = script(example, "--check", "--offline", cache=cache)
    assert drift.returncode == 1, drift.stderr
    assert "the Debian archive has moved since toolchain.nix was pinned" in drift.stderr
    assert f"  {MOVED} {old} -> {new}\n" in drift.stderr
    # Only the moved package is named, and the way out is one command.
    assert len([ln for ln in drift.stderr.splitlines() if " -> " in ln]) == 1
    assert f"re-pin with: {example}/build-toolchain.sh" in drift.stderr
    assert pinned_version(example, MOVED) == old  # --check never rewrites the pin

    repinned = script(example, "--offline", cache=cache)
    assert repinned.returncode == 0, repinned.stderr
    assert pinned_version(example, MOVED) == new
    assert (example / "toolchain.nix").read_text() != (pinned / "toolchain.nix").read_text()
    again = script(example, "--check", "--offline", cache=cache)
    assert again.returncode == 0, again.stderr


@pytest.mark.nix
def test_the_same_versions_with_other_bytes_are_not_the_pin(pinned: Path, tmp_path: Path) -> None:
    example = copy_pin(pinned, tmp_path / "calc")
    pin = example / "toolchain.nix"
    pin.write_text(re.sub(r'narHash = "[^"]+"', 'narHash = "sha256-AAAA"', pin.read_text()))
    done = script(example, "--check", "--offline", cache=EXAMPLE / ".debs")
    assert done.returncode == 1
    assert "differs from the pin although every package version matches" in done.stderr
    assert "pinned sha256-AAAA" in done.stderr


@pytest.mark.nix
def test_the_pinned_copy_checks_clean_and_lists_every_package(pinned: Path) -> None:
    done = script(pinned, "--check", "--offline", cache=EXAMPLE / ".debs")
    assert done.returncode == 0, done.stderr
    text = (pinned / "toolchain.nix").read_text()
    for pkg in ("python3.11-minimal", "python3-pytest", MOVED, "busybox-static"):
        assert f'"{pkg}=' in text


def test_bad_arguments_are_a_usage_error(tmp_path: Path) -> None:
    done = script(EXAMPLE, "--frobnicate", cache=tmp_path)
    assert done.returncode == 2
    assert "unknown argument --frobnicate" in done.stderr
