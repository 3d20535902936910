"""Fixtures of the integration tests that share the pytest example's pinned toolchain."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import reviewrepo

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "python-pytest"
IGNORED = shutil.ignore_patterns("toolchain", ".debs", ".provenance", "__pycache__")


@pytest.fixture(scope="session")
def pinned_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example whose toolchain is built from what the archive serves today.

    Debian's archive replaces a package when it publishes an update, so the example's
    committed pin can fall behind at any time (see examples/python-pytest/README.md). These
    tests are about attesting a real pytest suite, not about the archive standing still:
    they pin a copy and run against it. tests/integration/test_example_toolchain.py checks
    the pinning itself.
    """
    return build_pinned_copy(tmp_path_factory.mktemp("pinned") / "calc")


def build_pinned_copy(dest: Path) -> Path:
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        if os.environ.get("CI"):
            pytest.fail("CI=true but apt-get/dpkg-deb are missing: the pytest example must run")
        pytest.skip("the pytest example's toolchain needs apt-get and dpkg-deb to build")
    shutil.copytree(EXAMPLE, dest, ignore=IGNORED)
    env = {
        **os.environ,
        "NIX_CONFIG": "experimental-features = nix-command flakes",
        # The .debs are shared with the example itself (gitignored), so a warm machine
        # downloads nothing; the script fetches whatever version the archive serves now.
        "PROVENANCE_DEB_CACHE": str(EXAMPLE / ".debs"),
    }
    # The modern-Nix roots (scripts/nix-matrix.sh) are trixie/sid, whose apt cannot serve
    # bookworm's Python 3.11: there the host's cache is mounted in and apt is not asked.
    offline = ["--offline"] if os.environ.get("PROVENANCE_DEB_OFFLINE") == "1" else []
    done = subprocess.run(
        [str(dest / "build-toolchain.sh"), *offline],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"build-toolchain.sh failed:\n{done.stderr}")
    return dest


@pytest.fixture(scope="session")
def toolchain(pinned_example: Path) -> Path:
    """The pinned copy's toolchain dir (in the default store, as the flake names it)."""
    return pinned_example / "toolchain"


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, reviewrepo.Keys]]:
    """The attested `main` of the --base tests (built once per module)."""
    yield from reviewrepo.build_base_repo(tmp_path_factory)


@pytest.fixture
def repo(base_repo: tuple[Path, reviewrepo.Keys], tmp_path: Path) -> tuple[Path, reviewrepo.Keys]:
    """A copy of it on a new branch `change`, for one test to change."""
    return reviewrepo.copy_repo(base_repo, tmp_path)
