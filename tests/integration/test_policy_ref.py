"""The policy ref is unambiguous (issue 11, part 4): a tag, a local branch or a stray ref
named `origin/main` cannot stand in for the remote-tracking branch. Real git, real nix.

Before the fix `--policy-ref origin/main` was resolved as git resolves any name, so a
tag `origin/main` on the pull request's commit made the gate read the pull request's own
provenance.toml, trust its author's key, and skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.attest import pipeline as attest
from provenance.ci.gate import GateRequest, gate
from provenance.doors.nix import Nix
from provenance.formats import keys
from tests.conftest import git, make_flake, run

pytestmark = pytest.mark.nix

SHADOWS = {
    "tag": ["tag", "origin/main"],
    "branch": ["branch", "origin/main"],
    "ref": ["update-ref", "refs/origin/main"],
}


def _trust(key: Path, name: str, policy: Path) -> None:
    cmd = [sys.executable, "-m", "provenance", "trust", "add", name, str(key)]
    subprocess.run([*cmd, "--policy", str(policy)], check=True, capture_output=True)


@pytest.fixture
def pull_request(tmp_path: Path) -> tuple[Path, Path, Path]:
    """CI's clone: origin/main trusts alice; the checked-out change adds mallory's key to
    provenance.toml and carries mallory's attestation. Returns (clone, alice key, mallory key)."""
    upstream = make_flake(tmp_path / "upstream")
    alice_key, alice_pub, _ = keys.generate(tmp_path / "alice")
    mallory_key, mallory_pub, _ = keys.generate(tmp_path / "mallory")
    _trust(alice_pub, "alice", upstream / "provenance.toml")
    git(upstream, "add", "provenance.toml")
    git(upstream, "commit", "-qm", "trust alice")
    git(upstream, "branch", "-M", "main")
    bare = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(upstream), str(bare)])
    ci = tmp_path / "ci"
    run(["git", "clone", "-q", str(bare), str(ci)])
    git(ci, "checkout", "-q", "-b", "change")
    _trust(mallory_pub, "mallory", ci / "provenance.toml")
    git(ci, "commit", "-qam", "trust mallory too")
    signer = keys.load_signer(mallory_key)
    attest.build(attest.BuildRequest(flake_dir=ci, signer=signer), Nix())
    return ci, alice_key, mallory_key


def _gate(repo: Path, ref: str) -> tuple[bool, str, str]:
    report = gate(GateRequest(flake_dir=repo, policy_ref=ref, fetch=False), Nix())
    return report.skip, report.reason, report.trust


def test_the_remote_tracking_branch_decides(pull_request: tuple[Path, Path, Path]) -> None:
    ci, alice_key, _ = pull_request
    for ref in ("origin/main", "refs/remotes/origin/main"):
        skip, reason, trust = _gate(ci, ref)
        assert not skip
        assert "untrusted key(s)" in reason  # mallory's key is not on origin/main
        assert trust.startswith("refs/remotes/origin/main:provenance.toml")
    attest.build(attest.BuildRequest(flake_dir=ci, signer=keys.load_signer(alice_key)), Nix())
    assert _gate(ci, "origin/main")[0]


@pytest.mark.parametrize("kind", sorted(SHADOWS))
def test_a_shadowing_name_is_an_error_naming_the_candidates(
    pull_request: tuple[Path, Path, Path], kind: str
) -> None:
    ci, alice_key, _ = pull_request
    git(ci, *SHADOWS[kind], "HEAD")  # points at the change itself, mallory's policy
    shadow = {"tag": "refs/tags/origin/main", "branch": "refs/heads/origin/main"}.get(
        kind, "refs/origin/main"
    )
    skip, reason, _ = _gate(ci, "origin/main")
    assert not skip
    assert "trusted ref origin/main is ambiguous" in reason
    assert f"it names {shadow}, refs/remotes/origin/main" in reason
    assert "pass the full ref name, e.g. --policy-ref refs/remotes/origin/main" in reason
    # Even once alice has attested, the ambiguous name never decides: run.
    attest.build(attest.BuildRequest(flake_dir=ci, signer=keys.load_signer(alice_key)), Nix())
    assert not _gate(ci, "origin/main")[0]
    # The full name is exact, whatever else is called origin/main.
    skip, reason, trust = _gate(ci, "refs/remotes/origin/main")
    assert skip, reason
    assert trust.startswith("refs/remotes/origin/main:provenance.toml")
    # and the shadow itself, named in full, is mallory's policy (it trusts both keys)
    assert _gate(ci, shadow)[2].startswith(f"{shadow}:provenance.toml (2 key(s)")


def test_the_ci_default_is_the_full_remote_tracking_ref(
    pull_request: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`gate` without a trust option on a pull request: $GITHUB_BASE_REF names main, and a
    tag origin/main on the change does not get to choose the policy."""
    ci, _, _ = pull_request
    git(ci, "tag", "origin/main", "HEAD")
    out = tmp_path / "gh-output"
    out.write_text("")
    env = {"GITHUB_BASE_REF": "main", "GITHUB_OUTPUT": str(out)}
    done = subprocess.run(
        [sys.executable, "-m", "provenance", "gate", str(ci), "--no-fetch"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pairs = dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)
    assert pairs["skip"] == "false"
    assert "untrusted key(s)" in pairs["reason"]
    assert "trust: refs/remotes/origin/main:provenance.toml" in done.stderr


def test_missing_refs_and_pseudo_refs_run(pull_request: tuple[Path, Path, Path]) -> None:
    ci, _, _ = pull_request
    skip, reason, _ = _gate(ci, "origin/nope")
    assert not skip
    assert "trusted ref origin/nope does not exist here (no ref refs/remotes/origin/nope)" in reason
    assert "git fetch origin nope" in reason
    # HEAD is the change itself: never a trusted ref, however git would resolve it.
    skip, reason, _ = _gate(ci, "HEAD")
    assert not skip
    assert "trusted ref HEAD does not exist here" in reason
    skip, reason, _ = _gate(ci, "refs/remotes/origin/nope")
    assert not skip and "trusted ref refs/remotes/origin/nope does not exist here" in reason
