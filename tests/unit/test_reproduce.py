"""reproduce.py without a rebuild: where a fresh store's builds may run.

Nix 2.30 builds in the store's own state directory and refuses one with a world-writable
or symlinked parent, so a fresh store in /tmp (verify --rebuild's default) built nothing
on 2.34. The real rebuilds are tested on each version in tests/integration/test_verify.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provenance.doors.nix import Nix
from provenance.errors import UsageError
from provenance.verify import reproduce


class _Versioned(Nix):
    def __init__(self, version: str) -> None:
        super().__init__("nix")
        self._version = version


def test_the_nearest_world_writable_or_symlinked_parent_is_found(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky, like /tmp: nix refuses it all the same
    assert reproduce.unsafe_parent(shared / "store" / "nix") == shared
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert reproduce.unsafe_parent(tmp_path / "link" / "store") == tmp_path / "link"
    assert reproduce.unsafe_parent(Path("/usr/bin")) is None


@pytest.mark.parametrize("version", ["2.8.0", "2.26.3", "2.29.1"])
def test_before_2_30_builds_stay_in_tmpdir(tmp_path: Path, version: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with reproduce.build_dir_options(_Versioned(version), shared / "store") as options:
        assert options == {}


def test_a_store_without_an_unsafe_parent_keeps_its_own_build_dir(tmp_path: Path) -> None:
    home = Path.home()
    if reproduce.unsafe_parent(home) is not None:
        pytest.skip(f"{home} has a world-writable parent: no safe store to name")
    with reproduce.build_dir_options(_Versioned("2.34.8"), home / "store") as options:
        assert options == {}


def test_a_store_under_tmp_builds_in_a_private_directory_on_2_30(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Path.home() / ".cache"
    if reproduce.unsafe_parent(cache.parent) is not None:
        pytest.skip(f"{cache.parent} has a world-writable parent: no private directory")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with reproduce.build_dir_options(_Versioned("2.34.8"), shared / "store") as options:
        builds = Path(options["build-dir"])
        assert builds.parent == cache / "provenance"
        assert builds.stat().st_uid == os.getuid() and builds.stat().st_mode & 0o777 == 0o700
        assert reproduce.unsafe_parent(builds) is None
    assert not builds.exists()  # removed with the fresh store


def test_no_private_directory_outside_it_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    monkeypatch.setenv("HOME", str(shared / "home"))  # ~/.cache, the fallback, is in it too
    options = reproduce.build_dir_options(_Versioned("2.34.8"), shared / "store")
    with pytest.raises(UsageError, match=r"nix 2\.34\.8 builds nothing in a store under .*shared"):
        options.__enter__()


def test_a_cache_dir_under_tmp_falls_back_to_the_home_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache tests set XDG_CACHE_HOME under /tmp: ours, but below a world-writable /tmp,
    # which Nix >= 2.30 refuses as a build dir's parent; ~/.cache/provenance is used instead.
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    if reproduce.unsafe_parent(tmp_path) is not None:
        home = Path.home()
        if reproduce.unsafe_parent(home) is not None:
            pytest.skip(f"{home} has a world-writable parent: no private directory")
    monkeypatch.setenv("HOME", str(home))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    with reproduce.build_dir_options(_Versioned("2.34.8"), shared / "store") as options:
        assert Path(options["build-dir"]).parent == home / ".cache" / "provenance"
