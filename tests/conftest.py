"""Shared fixtures: real nix and git in temp dirs, keys, and a fake-nix helper.

Real-nix tests are marked `nix`. On a laptop without nix they skip; under CI=true a
missing nix is a failure, because CI must execute them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.doors.nix import Nix, current_system
from provenance.example import find_static_busybox
from provenance.formats import keys
from provenance.policy.nixenv import installable
from provenance.verify.reproduce import private_build_base, unsafe_parent

FIXTURES = Path(__file__).parent / "fixtures"
# The dev shell's builder, one copy: the built-in example's (the fixture flake uses it too).
DEV_ENV = Path(__file__).parent.parent / "provenance" / "data" / "example" / "dev" / "dev-env.sh"
NIX_CONFIG = "\n".join(
    [
        "experimental-features = nix-command flakes",
        "sandbox = true",
        "sandbox-fallback = false",
        "substituters =",
        "use-registries = false",
    ]
)


def isolate(mp: pytest.MonkeyPatch) -> None:
    """Our nix settings, no user git config, a fixed identity: for every test, and for the
    module-scoped fixtures that build before any test's own monkeypatch exists."""
    mp.setenv("NIX_CONFIG", NIX_CONFIG)
    mp.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        mp.setenv(f"GIT_{who}_NAME", "tester")
        mp.setenv(f"GIT_{who}_EMAIL", "t@example.invalid")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch)
    monkeypatch.delenv("PROVENANCE_KEY", raising=False)
    monkeypatch.delenv("PROVENANCE_NIX", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("PROVENANCE_LEDGER", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("nix"):
        return
    if os.environ.get("CI"):
        for item in items:
            if "nix" in item.keywords:
                # Under CI a missing nix must fail the run, never quietly skip.
                item.add_marker(pytest.mark.usefixtures("_nix_must_exist"))
        return
    skip = pytest.mark.skip(reason="nix is not installed")
    for item in items:
        if "nix" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def _nix_must_exist() -> None:
    pytest.fail("CI=true but nix is not installed: real-nix tests must run in CI")


def run(cmd: list[str], cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command for test setup; raise with its output if it fails."""
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        msg = f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise AssertionError(msg)
    return done  # type: ignore[no-any-return]


def git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args]).stdout.strip()


def nix(*args: str) -> str:
    return run(["nix", "--extra-experimental-features", "nix-command flakes", *args]).stdout.strip()


_NIX = Nix()  # asks `nix --version` once, when first needed


def nix_version() -> str:
    """The version of the nix on PATH ("2.8.0")."""
    return _NIX.version()


def drv_outputs(drv: str) -> str:
    """`drv`'s outputs as a `nix build` installable on the nix on PATH: a bare `X.drv`
    names the .drv file itself from 2.13 (building nothing), `X.drv^*` is refused by 2.8."""
    return installable(drv, nix_version())


def chroot_store(store: Path | str) -> list[str]:
    """`--store` options for a chroot store that set-up code builds in. From Nix 2.30 a
    store under /tmp (every tmp_path) cannot build without a build-dir outside it: the
    one `provenance verify --rebuild` would pick (reproduce.build_dir_options)."""
    args = ["--store", str(store)]
    builds = chroot_build_dir(store)
    return args + (["--option", "build-dir", str(builds)] if builds else [])


def chroot_build_dir(store: Path | str) -> Path | None:
    """A build-dir nix accepts for a chroot store at `store`, when it needs one (Nix >= 2.30
    refuses the store's own under /tmp): below reproduce.private_build_base()."""
    if unsafe_parent(Path(store)) is None or _NIX.version_tuple() < (2, 30):
        return None
    base = private_build_base()
    assert base is not None, "no private directory outside /tmp for nix's builds"
    builds = base / "test-builds"
    builds.mkdir(mode=0o700, exist_ok=True)
    return builds


def path_info_nar_hash(raw: object, path: str) -> str:
    """The narHash of `path` in `nix path-info --json` output: a list on 2.8, an object
    keyed by path since 2.19."""
    entry = raw[path] if isinstance(raw, dict) else next(e for e in raw if e["path"] == path)  # type: ignore[attr-defined]
    return str(entry["narHash"])


def make_flake(dest: Path, *, extra_checks: str | None = None, commit: bool = True) -> Path:
    """Copy the basic fixture flake to `dest` with a unique salt, git init and commit."""
    shutil.copytree(FIXTURES / "flakes" / "basic", dest)
    flake = dest / "flake.nix"
    salt = uuid.uuid4().hex
    flake.write_text(
        flake.read_text().replace("@SALT@", salt).replace("@SYSTEM@", current_system())
    )
    if extra_checks is not None:
        (dest / "extra-checks.nix").write_text(extra_checks)
    (dest / "tools" / "bin").mkdir(parents=True)
    shutil.copy2(find_static_busybox(), dest / "tools" / "bin" / "busybox")
    (dest / "dev").mkdir()
    shutil.copy2(DEV_ENV, dest / "dev" / "dev-env.sh")
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    if commit:
        run(["git", "commit", "-q", "-m", "fixture"], cwd=dest)
    return dest


@pytest.fixture
def flake(tmp_path: Path) -> Path:
    return make_flake(tmp_path / "repo")


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    key, pub, _ = keys.generate(tmp_path / "keys")
    return key, pub


@pytest.fixture
def fake_nix(tmp_path: Path) -> Iterator[Path]:
    """A directory for fake `nix` scripts; tests write `fake_nix / "nix"` themselves."""
    d = tmp_path / "fakebin"
    d.mkdir()
    yield d
