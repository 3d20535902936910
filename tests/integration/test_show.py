"""`provenance show` on a real history: a commit attested by two signers, then reused by a
README-only commit, verified by a reviewer (a signed VSA) and approved by another.

Uses the base repository of reviewrepo.py (main attested by alice, carol a reviewer).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provenance.formats import keys
from tests.conftest import git
from tests.integration.reviewrepo import Keys, approve, attest_with, cli, commit, suite_script

pytestmark = pytest.mark.nix


def _show(path: Path, *extra: str) -> dict[str, Any]:
    done = cli("show", "--flake", str(path), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout on a pseudo-terminal; what it printed there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_show_two_signers_reuse_vsa_and_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    first = commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    attest_with(path, k.bob)
    assert approve(path, k.carol, "--reason", "test_mul moved").returncode == 0
    head = commit(path, {"README.md": "docs\n"})  # reuses first's attestations
    done = cli(
        "verify", "--flake", str(path),
        "--trusted-key", str(k.pub("alice")), "--trusted-key", str(k.pub("bob")),
        "--sign-with", str(k.bob),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    shown = _show(path)
    assert shown["schema"] == "provenance-show/v1"
    assert shown["commit"] == head and shown["proven"] is True
    assert shown["trust"]["keys"] == ["alice", "bob"] and shown["trust"]["reviewers"] == ["carol"]
    suite = next(c for c in shown["checks"] if c["name"] == "suite")
    assert suite["proven"] is True
    assert suite["signers"] == ["alice", "bob"]
    assert suite["reusedFrom"] == [first]
    assert {
        (a["signer"], a["tier"], a["commit"], a["reusedFrom"]) for a in suite["attestations"]
    } == {
        ("alice", "local", first, first),
        ("bob", "local", first, first),
    }
    assert suite["tests"] == {
        "result": "PASSED", "idsListed": True, "passed": 2, "failed": 0, "skipped": 0, "total": 2,
    }  # fmt: skip
    out = suite["outputs"]["out"]
    assert out["path"].endswith("-suite-check") and len(out["sha256"]) == 64
    # bob's verify signed one summary per attestation it checked (alice's and his own).
    vsas = suite["verifications"]
    assert len(vsas) == 2
    assert {(v["verifier"], v["result"], v["commit"]) for v in vsas} == {("bob", "PASSED", head)}
    assert all("PROVENANCE_DRV_BOUND" in v["levels"] and not v["reproduced"] for v in vsas)
    (approval,) = shown["approvals"]
    assert approval["reviewers"] == ["carol"] and approval["commit"] == first
    assert approval["counts"] is True and approval["reason"] == "test_mul moved"
    assert {(d["kind"], d.get("test")) for d in approval["deltas"]} == {
        ("removed-test", "test_mul"),
        ("fewer-tests", None),
    }
    assert shown["review"] is None

    # With --base, the README commit carries first's deltas, and carol's approval covers them.
    shown = _show(path, "--base", "refs/heads/main")
    assert shown["review"]["ok"] is True
    assert shown["review"]["base"]["mergeBase"] == git(path, "rev-parse", "main")
    assert {d["kind"]: d["approvedBy"] for d in shown["review"]["deltas"]} == {
        "removed-test": ["carol"],
        "fewer-tests": ["carol"],
    }

    # Text: no colour when piped, colour on a terminal, none there either with NO_COLOR.
    piped = cli("show", "--flake", str(path))
    assert piped.returncode == 0
    assert "\x1b[" not in piped.stdout
    assert "suite  PROVEN" in piped.stdout
    assert f"alice [local] on {first[:12]} (reused from an ancestor)" in piped.stdout
    assert "bob: PASSED SLSA_BUILD_LEVEL_1, PROVENANCE_DRV_BOUND" in piped.stdout
    assert "carol approved" in piped.stdout and "suite: test removed: test_mul" in piped.stdout
    args = [sys.executable, "-m", "provenance", "show", "--flake", str(path)]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _on_a_terminal(args, env)
    assert "\x1b[32mPROVEN\x1b[0m" in coloured
    assert "\x1b[" not in _on_a_terminal(args, {**env, "NO_COLOR": "1"})


def test_show_what_is_not_proven(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, _ = repo
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add")})
    mallory = tmp_path / "mallory"
    attest_with(path, keys.generate(mallory)[0])  # a signer no policy names
    shown = _show(path, "--base", "refs/heads/main")
    assert shown["proven"] is False
    suite = next(c for c in shown["checks"] if c["name"] == "suite")
    assert suite["proven"] is False and suite["signers"] == []
    assert suite["reason"] == "no trusted attestation for this drvPath"
    assert shown["untrusted"]["lines"] >= 2  # mallory's provenance and test-result lines
    assert shown["review"]["ok"] is False
    assert "no trusted attestation of the change's tests" in shown["review"]["doubts"][0]


def test_show_json_even_on_failure(repo: tuple[Path, Keys]) -> None:
    path, _ = repo
    done = cli("show", "no-such-rev", "--flake", str(path), "--json")
    assert done.returncode == 2
    err = json.loads(done.stdout)
    assert err["exitCode"] == 2 and "'no-such-rev' is not a commit" in err["error"]
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_show_says_why_a_reused_attestation_does_not_count(repo: tuple[Path, Keys]) -> None:
    path, _ = repo
    flake = (path / "flake.nix").read_text()
    commit(path, {"flake.nix": flake + "# a new definition, same drvPaths\n"})
    shown = _show(path)
    chain = next(c for c in shown["checks"] if c["name"] == "chain")
    assert chain["proven"] is False
    (att,) = chain["attestations"]
    assert att["signer"] == "alice" and att["counts"] is False
    assert att["problem"] == "what defines the checks changed since"
    assert chain["reason"].startswith("the attestation by alice on ")
    assert chain["signers"] == [] and chain["outputs"]["out"]["sha256"] is None
