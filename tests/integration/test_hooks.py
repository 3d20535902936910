"""`provenance hooks install/uninstall` on real repos: the post-commit hook attests real
commits with real nix, skips --no-verify commits, and pre-push carries the notes along."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.doors.git import Git
from tests.conftest import git, make_flake, run

pytestmark = pytest.mark.nix

USER_HOOK = (
    "#!/bin/sh\n"
    "# the user's own pre-commit check\n"
    'echo user-hook-ran >> "$(git rev-parse --git-dir)/user.log"\n'
)


def _prov(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def _has_note(repo: Path, rev: str = "HEAD") -> bool:
    return Git(repo).note(git(repo, "rev-parse", rev)) is not None


def test_install_attest_skip_no_verify_push_uninstall(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "remote.git"
    run(["git", "init", "-q", "--bare", str(bare)])
    repo = make_flake(tmp_path / "repo")
    git(repo, "remote", "add", "origin", str(bare))
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-commit").write_text(USER_HOOK)
    (hooks / "pre-commit").chmod(0o755)

    done = _prov("hooks", "install", str(repo))
    assert done.returncode == 0, done.stderr
    assert "pre-commit: inserted" in done.stderr
    assert "post-commit: created" in done.stderr and "pre-push: created" in done.stderr
    # Installing twice changes nothing.
    assert "pre-commit: unchanged" in _prov("hooks", "install", str(repo)).stderr

    git(repo, "config", "provenance.key", str(keypair[0]))
    monkeypatch.setenv("PROVENANCE_HOOK_FOREGROUND", "1")  # wait for the attestation

    (repo / "README.md").write_text("one\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "attested by the hook")
    assert _has_note(repo), (repo / ".git" / "provenance-hook.log").read_text()
    assert (repo / ".git" / "user.log").read_text() == "user-hook-ran\n"  # theirs still runs

    (repo / "README.md").write_text("two\n")
    git(repo, "commit", "-q", "-a", "--no-verify", "-m", "skipped by the hook")
    assert not _has_note(repo)
    assert _has_note(repo, "HEAD~1")

    # pre-push carries the notes to the remote with the branch.
    git(repo, "push", "-q", "origin", "HEAD:refs/heads/main")
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)")
    assert "refs/notes/provenance" in remote_refs.split()

    done = _prov("hooks", "uninstall", str(repo))
    assert done.returncode == 0, done.stderr
    assert (hooks / "pre-commit").read_text() == USER_HOOK  # exactly what the user had
    assert not (hooks / "post-commit").exists()
    assert not (hooks / "pre-push").exists()
    assert "no provenance hooks installed" in _prov("hooks", "uninstall", str(repo)).stderr


def test_no_key_means_no_attestation_and_commit_succeeds(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "repo")
    assert _prov("hooks", "install", str(repo)).returncode == 0
    env = {**os.environ, "PROVENANCE_HOOK_FOREGROUND": "1"}
    (repo / "README.md").write_text("x\n")
    run(["git", "add", "README.md"], cwd=repo)
    run(["git", "commit", "-q", "-m", "no key configured"], cwd=repo, env=env)
    assert not _has_note(repo)


def test_failing_attestation_never_fails_the_commit(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    assert _prov("hooks", "install", str(repo)).returncode == 0
    env = {
        **os.environ,
        "PROVENANCE_HOOK_FOREGROUND": "1",
        "PROVENANCE_KEY": str(keypair[0]),
        "PROVENANCE_NIX": "/nonexistent/nix",
    }
    (repo / "README.md").write_text("x\n")
    run(["git", "add", "README.md"], cwd=repo)
    run(["git", "commit", "-q", "-m", "nix is gone"], cwd=repo, env=env)  # raises if rc != 0
    assert not _has_note(repo)
    assert "nix is not installed" in (repo / ".git" / "provenance-hook.log").read_text()


def test_refuses_a_non_shell_hook(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "repo")
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/usr/bin/env python3\nprint('mine')\n")
    done = _prov("hooks", "install", str(repo))
    assert done.returncode == 2
    assert "not a POSIX shell script" in done.stderr
    # All or nothing: no other hook was written.
    assert not (repo / ".git" / "hooks" / "post-commit").exists()
    assert hook.read_text() == "#!/usr/bin/env python3\nprint('mine')\n"


def test_our_block_runs_before_a_hook_that_ends_in_exec(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    # pre-commit's own hook ends in `exec`: a block appended after it would never run, so
    # the marker would never be written and post-commit would silently attest nothing.
    repo = make_flake(tmp_path / "repo")
    user = '#!/bin/sh\necho user-hook-ran >> "$(git rev-parse --git-dir)/user.log"\nexec true\n'
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(user)
    hook.chmod(0o755)
    done = _prov("hooks", "install", str(repo))
    assert "pre-commit: inserted" in done.stderr
    env = {**os.environ, "PROVENANCE_HOOK_FOREGROUND": "1", "PROVENANCE_KEY": str(keypair[0])}
    (repo / "README.md").write_text("x\n")
    run(["git", "add", "README.md"], cwd=repo)
    run(["git", "commit", "-q", "-m", "through an exec hook"], cwd=repo, env=env)
    assert _has_note(repo), (repo / ".git" / "provenance-hook.log").read_text()
    assert (repo / ".git" / "user.log").read_text() == "user-hook-ran\n"
    _prov("hooks", "uninstall", str(repo))
    assert hook.read_text() == user  # byte for byte what the user had


def test_a_hostile_flake_directory_name_is_data_not_code(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    top = tmp_path / "repo"
    top.mkdir()
    run(["git", "init", "-q"], cwd=top)
    sub = top / 'we"ird $(touch pwned)'
    sub.mkdir()
    (sub / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    run(["git", "add", "-A"], cwd=top)
    run(["git", "commit", "-q", "-m", "a flake in an odd directory"], cwd=top)
    assert _prov("hooks", "install", str(sub)).returncode == 0
    env = {
        **os.environ,
        "PROVENANCE_HOOK_FOREGROUND": "1",
        "PROVENANCE_KEY": str(keypair[0]),
        "PROVENANCE_NIX": "/nonexistent/nix",  # the build fails fast; we only want its path
    }
    (top / "README.md").write_text("x\n")
    run(["git", "add", "README.md"], cwd=top)
    run(["git", "commit", "-q", "-m", "commit"], cwd=top, env=env)
    assert not list(top.rglob("pwned"))  # the name was never run as a command
    log = (top / ".git" / "provenance-hook.log").read_text()
    assert "nix is not installed" in log  # the build ran, on the directory as named


def test_install_warns_when_no_signing_key_is_configured(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    done = _prov("hooks", "install", str(repo))
    assert done.returncode == 0
    assert "no signing key is configured" in done.stderr
    git(repo, "config", "provenance.key", str(keypair[0]))
    assert "no signing key" not in _prov("hooks", "install", str(repo)).stderr
