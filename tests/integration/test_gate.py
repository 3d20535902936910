"""`provenance gate` driven as CI drives it: the CLI in a child process, GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY set, real git repos with real notes, real nix evaluation."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.attest import pipeline as attest
from provenance.doors.nix import Nix
from provenance.errors import BuildFailedError
from provenance.formats import dsse, intoto, keys
from provenance.formats.intoto import TEST_RESULT_V01, ResourceDescriptor, Statement
from provenance.policy import trust
from tests.conftest import git, make_flake

pytestmark = pytest.mark.nix


def _attest(repo: Path, key: Path) -> attest.BuildReport:
    req = attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key))
    return attest.build(req, Nix())


def _gate(
    repo: Path, tmp_path: Path, *args: str, **env: str
) -> tuple[int, dict[str, str], str, str]:
    """Run the CLI like a CI step; return (exit code, $GITHUB_OUTPUT pairs, summary, stderr)."""
    out, summary = tmp_path / "gh-output", tmp_path / "gh-summary"
    out.write_text("")
    summary.write_text("")
    full_env = {**os.environ, "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary), **env}
    done = subprocess.run(
        [sys.executable, "-m", "provenance", "gate", str(repo), *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )
    pairs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return done.returncode, pairs, summary.read_text(), done.stderr


def _commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def test_attested_commit_skips(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keypair
    report = _attest(flake, key)
    rc, out, summary, err = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert rc == 0, err
    assert out["skip"] == "true"
    assert "all 2 check(s) attested" in out["reason"]
    assert out["commit"] == report.commit
    # One table row per check, each passing, naming the drvPath that was proven.
    rows = [
        ln for ln in summary.splitlines() if ln.startswith("| det ") or ln.startswith("| chain ")
    ]
    assert len(rows) == 2
    assert all("| pass |" in r for r in rows)
    det_drv = next(c.drv_path for c in report.checks if c.name == "det")
    assert det_drv.rsplit("/", 1)[-1] in summary
    assert "skip=true" in err


def test_json_verdict_on_stdout(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keypair
    _attest(flake, key)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "provenance",
            "gate",
            str(flake),
            "--trusted-key",
            str(pub),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    verdict = json.loads(done.stdout)
    assert verdict["skip"] is True
    assert {c["name"] for c in verdict["checks"]} == {"det", "chain"}
    assert all(c["passed"] and c["signers"] == [pub.name] for c in verdict["checks"])


def test_no_notes_runs(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    rc, out, summary, _ = _gate(flake, tmp_path, "--trusted-key", str(keypair[1]))
    assert rc == 0
    assert out["skip"] == "false"
    assert "no attestation notes" in out["reason"]
    assert "| not proven |" in summary


def test_untrusted_signer_runs(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, _ = keypair
    _attest(flake, key)
    _, other_pub, _ = keys.generate(tmp_path / "other")
    signer_id = keys.load_signer(key).keyid
    rc, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(other_pub))
    assert rc == 0
    assert out["skip"] == "false"
    assert "untrusted key(s)" in out["reason"]
    assert signer_id[:16] in out["reason"]


def test_failed_check_runs(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    extra = '{ mk, tests }: { fail = mk "fail-check" "echo 1 failed; exit 3" { }; }\n'
    repo = make_flake(tmp_path / "repo", extra_checks=extra)
    key, pub = keypair
    with pytest.raises(BuildFailedError):
        _attest(repo, key)  # det and chain are attested; fail is not
    rc, out, summary, _ = _gate(repo, tmp_path, "--trusted-key", str(pub))
    assert rc == 0
    assert out["skip"] == "false"
    assert out["reason"].startswith("fail: no trusted attestation")
    assert "| fail | not proven |" in summary
    # Requiring only the checks that passed is a skip.
    rc, out, _, _ = _gate(
        repo, tmp_path, "--trusted-key", str(pub), "--require", "det", "--require", "chain"
    )
    assert out["skip"] == "true"


def test_failed_test_result_statement_never_skips(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """A trusted FAILED test-result for the exact drvPath wins over a passing statement."""
    key, pub = keypair
    report = _attest(flake, key)
    det = next(c for c in report.checks if c.name == "det")
    stmt = Statement(
        subject=[
            ResourceDescriptor(name=p["path"], digest={"sha256": p["sha256"]})
            for p in det.outputs.values()
        ],
        predicate_type=TEST_RESULT_V01,
        predicate=intoto.TestResult(
            result="FAILED",
            configuration=[ResourceDescriptor(name=det.drv_path)],
            failed_tests=["x"],
        ).as_predicate(),
    )
    env = dsse.sign(stmt.dump_bytes(), [keys.load_signer(key)])
    git(flake, "notes", "--ref", "provenance", "append", "-m", env.to_json(), "HEAD")
    rc, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert rc == 0
    assert out["skip"] == "false"
    assert out["reason"].startswith("det: a trusted key attested it FAILED")


def test_changed_test_script_with_copied_note_runs(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keypair
    old = _attest(flake, key).commit
    new = _commit_file(
        flake, "tests/test_det.sh", 'echo "test_one ok"\necho "1 passed, 0 failed"\n'
    )
    git(flake, "notes", "--ref", "provenance", "copy", old, new)  # the old proof, pasted on
    rc, out, _, err = _gate(flake, tmp_path, "--trusted-key", str(pub), "--json")
    assert rc == 0
    assert out["skip"] == "false"
    assert out["reason"].startswith("det: attested on " + old[:12] + " for a different drvPath")
    # chain does not read the tests: its drvPath is unchanged, so its proof still counts.
    assert "PASS chain" in err


def test_readme_only_commit_reuses_parent_attestation(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keypair
    parent = _attest(flake, key).commit
    _commit_file(flake, "README.md", "docs only\n")
    rc, out, summary, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert rc == 0
    assert out["skip"] == "true"
    assert f"reused the attestation of commit {parent}" in out["reason"]
    assert f"`{parent[:12]}`" in summary
    # The bound is real: with a window of one commit the parent is out of reach.
    rc, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub), "--search-depth", "1")
    assert out["skip"] == "false"
    assert "no attestation notes on the revision or its ancestors (searched 1)" in out["reason"]


def test_build_cache_hit_via_ancestor(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    parent = _attest(flake, key).commit
    _commit_file(flake, "README.md", "docs only\n")
    report = _attest(flake, key)
    assert [c.status for c in report.checks] == ["cached", "cached"]
    assert {c.via for c in report.checks} == {parent}
    # Reused lines are statements about the parent: they stay off the new commit's note.
    assert not report.note_attached
    shown = subprocess.run(
        ["git", "-C", str(flake), "notes", "--ref", "provenance", "show", "HEAD"],
        capture_output=True,
    )
    assert shown.returncode != 0
    # and the bundle still carries the reused statements, for the record
    assert report.bundle_path is not None and report.bundle_path.read_text().strip()


def test_corrupted_note_runs(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keypair
    _attest(flake, key)
    note = git(flake, "notes", "--ref", "provenance", "show", "HEAD")
    tampered = []
    for line in note.splitlines():
        env = json.loads(line)
        payload = base64.b64decode(env["payload"]).replace(b'"dirty":false', b'"dirty":true ')
        env["payload"] = base64.b64encode(payload).decode()
        tampered.append(json.dumps(env))
    git(flake, "notes", "--ref", "provenance", "add", "-f", "-m", "\n".join(tampered), "HEAD")
    rc, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert rc == 0
    assert out["skip"] == "false"
    assert "fail signature verification" in out["reason"]
    # Truncated lines (not even JSON) are reported as malformed.
    git(flake, "notes", "--ref", "provenance", "add", "-f", "-m", note[: len(note) // 2], "HEAD")
    _, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert out["skip"] == "false"
    assert "malformed" in out["reason"]


def test_missing_nix_runs(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keypair
    _attest(flake, key)
    rc, out, summary, err = _gate(
        flake, tmp_path, "--trusted-key", str(pub), PROVENANCE_NIX="/nonexistent/nix"
    )
    assert rc == 0, err
    assert out["skip"] == "false"
    assert "nix is not installed" in out["reason"]
    assert "run: the checks are not proven" in summary


def test_dirty_attestation_never_counts(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keypair
    # A comment changes no drvPath but makes the tree dirty.
    extra = flake / "extra-checks.nix"
    extra.write_text(extra.read_text() + "# local edit\n")
    req = attest.BuildRequest(flake_dir=flake, signer=keys.load_signer(key), allow_dirty=True)
    report = attest.build(req, Nix())
    assert report.bundle_path is not None
    # Attach the dirty bundle by hand, then restore the tree: a dirty proof is no proof.
    git(flake, "notes", "--ref", "provenance", "add", "-f", "-F", str(report.bundle_path), "HEAD")
    git(flake, "checkout", "--", "extra-checks.nix")
    _, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert out["skip"] == "false"
    assert "only dirty-tree attestations exist for this drvPath" in out["reason"]


def test_threshold_needs_distinct_signers(flake: Path, tmp_path: Path) -> None:
    a_key, a_pub, _ = keys.generate(tmp_path / "a")
    _, b_pub, _ = keys.generate(tmp_path / "b")
    _attest(flake, a_key)
    policy = tmp_path / "policy" / "provenance.toml"
    for name, pub in (("alice", a_pub), ("bob", b_pub)):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "provenance",
                "trust",
                "add",
                name,
                str(pub),
                "--policy",
                str(policy),
            ],
            check=True,
            capture_output=True,
        )
    policy.write_text(policy.read_text().replace("threshold = 1", "threshold = 2"))
    _, out, _, _ = _gate(flake, tmp_path, "--policy", str(policy))
    assert out["skip"] == "false"
    assert "only 1 of 2 required trusted signer(s)" in out["reason"]


def test_policy_comes_from_the_target_branch_not_the_change(tmp_path: Path) -> None:
    """A change that adds its own key to provenance.toml does not get to skip CI."""
    repo = make_flake(tmp_path / "repo")
    alice_key, alice_pub, _ = keys.generate(tmp_path / "alice")
    mallory_key, mallory_pub, _ = keys.generate(tmp_path / "mallory")
    prov = [sys.executable, "-m", "provenance"]
    subprocess.run(
        [*prov, "trust", "add", "alice", str(alice_pub), "--policy", str(repo / "provenance.toml")],
        check=True,
        capture_output=True,
    )
    git(repo, "add", "provenance.toml")
    git(repo, "commit", "-q", "-m", "trust alice")
    git(repo, "branch", "-M", "main")
    git(repo, "checkout", "-q", "-b", "change")
    subprocess.run(
        [
            *prov,
            "trust",
            "add",
            "mallory",
            str(mallory_pub),
            "--policy",
            str(repo / "provenance.toml"),
        ],
        check=True,
        capture_output=True,
    )
    _commit_file(repo, "tests/test_det.sh", 'echo "trust me"\n')
    git(repo, "add", "provenance.toml")
    git(repo, "commit", "-q", "-m", "trust mallory too")
    _attest(repo, mallory_key)
    # The target branch's policy (as CI announces it) trusts only alice.
    rc, out, summary, _ = _gate(repo, tmp_path, "--policy-ref", "refs/heads/main")
    assert rc == 0
    assert out["skip"] == "false"
    assert "untrusted key(s)" in out["reason"]
    assert "refs/heads/main:provenance.toml" in summary
    # GITHUB_BASE_REF names the target branch; without a remote origin/main is absent: run.
    _, out, _, _ = _gate(repo, tmp_path, GITHUB_BASE_REF="main")
    assert out["skip"] == "false"
    assert "trusted ref refs/remotes/origin/main does not exist" in out["reason"]
    # A short name must be a remote-tracking branch: `main` is only a local one here.
    _, out, _, _ = _gate(repo, tmp_path, "--policy-ref", "main")
    assert out["skip"] == "false"
    assert (
        "trusted ref main is not a remote-tracking branch: it names refs/heads/main"
        in (out["reason"])
    )
    # Once alice attests, the target branch's policy lets it skip.
    _attest(repo, alice_key)
    _, out, _, _ = _gate(repo, tmp_path, "--policy-ref", "refs/heads/main")
    assert out["skip"] == "true"
    # A policy file from inside the tree under test is refused outright.
    rc, out, _, err = _gate(repo, tmp_path, "--policy", str(repo / "provenance.toml"))
    assert rc == 2
    assert "inside the tree under test" in err
    assert out == {}


def test_bad_usage_exits_2(flake: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    rc, _, _, err = _gate(flake, tmp_path)
    assert rc == 2
    assert "no trust given" in err
    rc, _, _, err = _gate(flake, tmp_path, "--trusted-key", str(tmp_path / "missing.pub"))
    assert rc == 2
    assert err.startswith("error:")
    assert "Traceback" not in err
    rc, _, _, err = _gate(flake, tmp_path, "--trusted-key", str(keypair[1]), "--search-depth", "0")
    assert rc == 2


def test_not_a_repo_and_bad_rev_run(
    tmp_path: Path, flake: Path, keypair: tuple[Path, Path]
) -> None:
    rc, out, _, _ = _gate(flake, tmp_path, "--trusted-key", str(keypair[1]), "--rev", "no-such-rev")
    assert rc == 0
    assert out["skip"] == "false"
    assert "not a commit" in out["reason"]
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    rc, out, _, _ = _gate(elsewhere, tmp_path, "--trusted-key", str(keypair[1]))
    assert rc == 0
    assert out["skip"] == "false"


def test_an_expired_trusted_key_is_named_not_called_tampering(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    # issue 13: a signature by a key whose trust ran out was reported as "fail signature
    # verification (corrupted note?)". It still says run.
    key, pub = keypair
    _attest(flake, key)
    policy = tmp_path / "policy.toml"
    trust.add_key(policy, "alice", pub, expires=dt.date(2020, 1, 1))
    rc, out, _, err = _gate(flake, tmp_path, "--policy", str(policy))
    assert rc == 0 and out["skip"] == "false", err
    assert "alice (trusted until 2020-01-01)" in out["reason"]
    assert "corrupted" not in out["reason"]


def test_an_untrusted_signer_of_this_drvpath_is_the_reason_not_an_older_proof(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    # issue 13: the trusted key proved the parent (another drvPath), a key nobody trusts
    # attested this commit: the reason said "attested on <parent> for a different drvPath".
    key, pub = keypair
    _attest(flake, key)
    _commit_file(flake, "tests/test_det.sh", "echo 1 passed\n")  # det's drvPath changes
    mallory, _, mallory_id = keys.generate(tmp_path / "mallory")
    _attest(flake, mallory)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "provenance",
            "gate",
            str(flake),
            "--trusted-key",
            str(pub),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    verdict = json.loads(done.stdout)
    assert verdict["skip"] is False, done.stderr
    det = next(c for c in verdict["checks"] if c["name"] == "det")
    assert mallory_id[:16] in det["reason"] and "untrusted" in det["reason"]
    assert "different drvPath" not in det["reason"]
