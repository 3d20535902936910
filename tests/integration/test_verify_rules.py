"""Rules `verify` and `gate` must share: the threshold over separately signed statements,
a trusted FAILED test result, reuse of an ancestor's attestation; and no traceback on a
signed statement whose predicate is not an object, or on trust taken from the tree."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.attest import pipeline as attest
from provenance.cli import app
from provenance.doors.nix import Nix, current_system
from provenance.example import find_static_busybox
from provenance.formats import keys
from tests.conftest import git, nix, run
from tests.integration.test_gate import _commit_file, _gate
from tests.integration.test_verify import _payload, _resign, _write, cli

pytestmark = pytest.mark.nix

SLSA = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


def _build(repo: Path, key: Path) -> attest.BuildReport:
    return attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())


def _lines(report: attest.BuildReport) -> list[str]:
    assert report.bundle_path is not None
    return report.bundle_path.read_text().splitlines()


def _line(lines: list[str], check: str, ptype: str = SLSA) -> str:
    for ln in lines:
        stmt = _payload(ln)
        if stmt["predicateType"] != ptype:
            continue
        if ptype == SLSA:
            name = stmt["predicate"]["buildDefinition"]["externalParameters"]["check"]
        else:
            name = next(
                c["annotations"]["check"]
                for c in stmt["predicate"]["configuration"]
                if c.get("annotations", {}).get("kind") == "derivation"
            )
        if name == check:
            return ln
    raise AssertionError(f"no {ptype} line for {check}")


def _policy(tmp_path: Path, threshold: int, **pubs: Path) -> Path:
    policy = tmp_path / "policy" / "provenance.toml"
    for name, pub in pubs.items():
        done = CliRunner().invoke(app, ["trust", "add", name, str(pub), "--policy", str(policy)])
        assert done.exit_code == 0, done.stderr
    policy.write_text(policy.read_text().replace("threshold = 1", f"threshold = {threshold}"))
    return policy


def _append_note(repo: Path, line: str, rev: str = "HEAD") -> None:
    git(repo, "notes", "--ref", "provenance", "append", "-m", line, rev)


@pytest.fixture
def two_keys(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    a_key, a_pub, _ = keys.generate(tmp_path / "alice")
    b_key, b_pub, _ = keys.generate(tmp_path / "bob")
    return a_key, a_pub, b_key, b_pub


# -- 1. one threshold rule ---------------------------------------------------------------


def test_two_keys_building_separately_meet_threshold_two(
    flake: Path, tmp_path: Path, two_keys: tuple[Path, Path, Path, Path]
) -> None:
    a_key, a_pub, b_key, b_pub = two_keys
    policy = _policy(tmp_path, 2, alice=a_pub, bob=b_pub)
    by_alice = _build(flake, a_key)
    assert by_alice.bundle_path is not None
    alone = tmp_path / "alice.intoto.jsonl"
    alone.write_bytes(by_alice.bundle_path.read_bytes())  # bob's build rewrites the bundle

    # Alice alone: one envelope per check, one signer: 1 of 2, for verify and gate alike.
    code, out, err = cli(alone, "--flake", flake, "--policy", policy, "--json")
    assert code == 1
    assert "FAIL det: only 1 of 2 required trusted signer(s) (alice)" in err
    assert {c["name"]: c["passed"] for c in json.loads(out)["checks"]} == {
        "det": False,
        "chain": False,
    }
    code, _, err = cli("--flake", flake, "--policy", policy)
    assert code == 1 and "FAIL det: only 1 of 2 required trusted signer(s) (alice)" in err
    _, gh, _, _ = _gate(flake, tmp_path, "--policy", str(policy))
    assert gh["skip"] == "false" and "only 1 of 2 required trusted signer(s)" in gh["reason"]

    # Bob builds the same checks on his own: two envelopes per check, the same outputs.
    by_bob = _build(flake, b_key)
    assert by_bob.bundle_path is not None
    code, _, err = cli(alone, by_bob.bundle_path, "--flake", flake, "--policy", policy)
    assert code == 0, err
    assert "OK   det: 2 of 2 required trusted signer(s) (alice, bob)" in err
    code, _, err = cli("--flake", flake, "--policy", policy)
    assert code == 0, err
    assert "OK   chain: 2 of 2 required trusted signer(s) (alice, bob)" in err
    rc, gh, _, err = _gate(flake, tmp_path, "--policy", str(policy))
    assert rc == 0 and gh["skip"] == "true", err
    assert "PASS det: attested by alice, bob on this commit" in err


def test_signers_disagreeing_on_digests_do_not_add_up(
    flake: Path, tmp_path: Path, two_keys: tuple[Path, Path, Path, Path]
) -> None:
    a_key, a_pub, b_key, b_pub = two_keys
    policy = _policy(tmp_path, 2, alice=a_pub, bob=b_pub)
    lines = _lines(_build(flake, a_key))
    stmt = _payload(_line(lines, "det"))
    stmt["subject"][0]["digest"]["sha256"] = "ab" * 32  # bob says the output is other bytes
    forged = _resign(stmt, keys.load_signer(b_key))
    bundle = _write(tmp_path, _line(lines, "det"), forged)
    code, _, err = cli(bundle, "--flake", flake, "--policy", policy)
    assert code == 1
    assert "FAIL det: only 1 of 2 required trusted signer(s)" in err
    assert "attested different output digests for the same drvPath, which do not add up" in err
    # Each envelope on its own is authentic and bound: the rule, not the levels, refuses.
    assert err.count("OK   det bound/subjects") == 2
    _append_note(flake, forged)
    _, gh, _, _ = _gate(flake, tmp_path, "--policy", str(policy))
    assert gh["skip"] == "false"
    _, gh, _, err = _gate(flake, tmp_path, "--policy", str(policy), "--require", "det")
    assert gh["skip"] == "false"
    assert "RUN  det: only 1 of 2 required trusted signer(s)" in err
    assert "attested different output digests" in err
    # With threshold 1, verify accepts the larger agreeing group and reports the
    # disagreement; the gate, where doubt means run, does not skip on it.
    one = _policy(tmp_path / "one", 1, alice=a_pub, bob=b_pub)
    code, _, err = cli(bundle, "--flake", flake, "--policy", one)
    assert code == 0, err
    assert "OK   det: 1 of 1 required trusted signer(s)" in err
    assert "attested different output digests" in err
    _, gh, _, err = _gate(flake, tmp_path, "--policy", str(one), "--require", "det")
    assert gh["skip"] == "false"
    assert "RUN  det: trusted signers disagree on the output digests" in err


# -- 2. a trusted FAILED test result ----------------------------------------------------


def test_trusted_failed_test_result_fails_the_check(
    flake: Path, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    lines = _lines(_build(flake, key))
    result = _payload(_line(lines, "det", TEST_RESULT))
    assert result["predicate"]["result"] == "PASSED"
    assert cli("--flake", flake, "--trusted-key", pub)[0] == 0

    # Someone untrusted says FAILED: listed as skipped, no effect.
    result["predicate"]["result"] = "FAILED"
    other, _, _ = keys.generate(tmp_path / "mallory")
    _append_note(flake, _resign(result, keys.load_signer(other)))
    code, _, err = cli("--flake", flake, "--trusted-key", pub)
    assert code == 0, err

    # The trusted key says FAILED for det's exact drvPath: det fails, chain still passes.
    failed = _resign(result, keys.load_signer(key))
    _append_note(flake, failed)
    code, out, err = cli("--flake", flake, "--trusted-key", pub, "--json")
    assert code == 1
    assert "FAIL det bound/test-result" in err and "FAILED" in err
    assert "FAIL det: a trusted key attested it FAILED" in err
    verdicts = {c["name"]: c["passed"] for c in json.loads(out)["checks"]}
    assert verdicts == {"det": False, "chain": True}
    assert json.loads(out)["missing"] == ["det"]
    assert cli("--flake", flake, "--trusted-key", pub, "--check", "chain")[0] == 0
    # The same line in a bundle, beside det's provenance.
    code, _, err = cli(
        _write(tmp_path, _line(lines, "det"), failed), "--flake", flake, "--trusted-key", pub
    )
    assert code == 1 and "FAIL det: a trusted key attested it FAILED" in err
    # The gate agrees.
    _, gh, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert gh["skip"] == "false" and "det: a trusted key attested it FAILED" in gh["reason"]


# -- 3. reusing an ancestor's attestation --------------------------------------------------


def test_readme_only_commit_verifies_with_the_parents_attestation(
    flake: Path, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    parent = _build(flake, key).commit
    head = _commit_file(flake, "README.md", "docs only\n")
    reused = _build(flake, key)  # a cache hit via the parent: its bundle holds the parent's lines
    assert reused.commit == head and {c.via for c in reused.checks} == {parent}
    assert reused.bundle_path is not None
    code, _, err = cli(reused.bundle_path, "--flake", flake, "--trusted-key", pub)
    assert code == 0, err
    assert f"attested on ancestor {parent[:12]}, same drvPath" in err
    # Notes: HEAD has none; the parent's note is read, as the gate does.
    code, out, err = cli("--flake", flake, "--trusted-key", pub, "--json")
    assert code == 0, err
    assert f"attested on ancestor {parent[:12]}, same drvPath" in err
    report = json.loads(out)
    assert {c["name"]: c["attestedOn"] for c in report["checks"]} == {
        "det": [parent],
        "chain": [parent],
    }
    _, gh, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert gh["skip"] == "true"


def test_old_lines_on_ancestors_notes_are_history_not_failures(
    flake: Path, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    old = _build(flake, key).commit
    test = flake / "tests" / "test_det.sh"
    test.write_text(test.read_text() + "\necho changed test\n")
    git(flake, "commit", "-qam", "change the tests")
    _build(flake, key)  # det is attested anew, chain is reused from `old`
    code, out, err = cli("--flake", flake, "--trusted-key", pub, "--json")
    assert code == 0, err
    report = json.loads(out)
    # old's det statement (the old drvPath) and test result are counted, not failed.
    assert report["ancestorLinesIgnored"] >= 2
    assert f"SKIP {report['ancestorLinesIgnored']} line(s) on ancestors' notes" in err
    assert {c["name"]: c["attestedOn"] for c in report["checks"]}["chain"] == [old]


def test_statement_of_a_commit_that_is_not_an_ancestor_is_rejected(
    flake: Path, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    parent = _build(flake, key).commit
    lines = _lines(_build(flake, key))
    git(flake, "checkout", "-q", "-b", "side")
    side = _commit_file(flake, "README.md", "side branch\n")
    git(flake, "checkout", "-q", "-")
    _commit_file(flake, "NOTES.md", "main branch\n")
    stmt = _payload(_line(lines, "det"))
    stmt["predicate"]["buildDefinition"]["externalParameters"]["source"]["gitCommit"] = side
    line = _resign(stmt, keys.load_signer(key))  # same drvPath, but made on a sibling
    code, _, err = cli(_write(tmp_path, line), "--flake", flake, "--trusted-key", pub)
    assert code == 1
    assert f"attests commit {side[:12]}, but the revision verified is" in err
    assert "not one of its last 50 commits" in err
    # Beyond the bound: 50 commits later the parent's own statement no longer counts either.
    for n in range(50):
        git(flake, "commit", "-q", "--allow-empty", "-m", f"empty {n}")
    code, _, err = cli(
        _write(tmp_path, _line(lines, "det")), "--flake", flake, "--trusted-key", pub
    )
    assert code == 1
    assert f"attests commit {parent[:12]}" in err and "not one of its last 50 commits" in err
    _, gh, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert gh["skip"] == "false"


# -- 4. malformed predicates, trust from the tree -------------------------------------------


@pytest.mark.parametrize("predicate", [[1, 2], "FAILED", None, 3])
@pytest.mark.parametrize("ptype", [SLSA, TEST_RESULT])
def test_predicate_that_is_not_an_object(
    flake: Path, tmp_path: Path, keypair: tuple[Path, Path], predicate: Any, ptype: str
) -> None:
    key, pub = keypair
    lines = _lines(_build(flake, key))
    stmt = _payload(_line(lines, "det", ptype))
    stmt["predicate"] = predicate
    line = _resign(stmt, keys.load_signer(key))
    code, _, err = cli(_write(tmp_path, line), "--flake", flake, "--trusted-key", pub)
    assert code == 1  # a signed statement we cannot read is a failed verification
    assert "Traceback" not in err and "FAIL" in err
    _append_note(flake, line)  # in the notes, a trusted malformed line fails or is skipped
    code, _, err = cli("--flake", flake, "--trusted-key", pub)
    assert "Traceback" not in err
    _, gh, _, _ = _gate(flake, tmp_path, "--trusted-key", str(pub))
    assert "unexpected error" not in gh["reason"]


def test_trust_from_the_tree_under_review_is_warned_about(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    _build(flake, key)
    done = CliRunner().invoke(
        app, ["trust", "add", "me", str(pub), "--policy", str(flake / "provenance.toml")]
    )
    assert done.exit_code == 0
    code, _, err = cli("--flake", flake)
    assert code == 0, err
    assert "warning: trust comes from" in err and "in the tree under review" in err
    code, _, err = cli("--flake", flake, "--trusted-key", pub)
    assert code == 0 and "tree under review" not in err


def test_no_verification_summary_on_trust_from_the_tree_under_review(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """verify --sign-with refuses (exit 3) when the keys came from the reviewed repository:
    its provenance.toml (found or named), or a key file inside it. Nothing is signed."""
    key, pub = keypair
    commit = _build(flake, key).commit
    note_before = git(flake, "notes", "--ref", "provenance", "show", commit)
    reviewer_key, _, _ = keys.generate(tmp_path / "reviewer")
    done = CliRunner().invoke(
        app, ["trust", "add", "me", str(pub), "--policy", str(flake / "provenance.toml")]
    )
    assert done.exit_code == 0
    in_tree_key = flake / "keys" / "me.pub"
    in_tree_key.parent.mkdir()
    shutil.copy(pub, in_tree_key)
    vsa = tmp_path / "vsa.intoto.jsonl"
    for trust in (
        [],  # the default: the flake directory's provenance.toml
        ["--policy", flake / "provenance.toml"],
        ["--trusted-key", in_tree_key],
    ):
        code, _, err = cli("--flake", flake, *trust, "--sign-with", reviewer_key, "-o", vsa)
        assert code == 3, err
        assert "in the tree under review" in err
        assert "no verification summary is signed on it" in err
        assert not vsa.exists()
    assert git(flake, "notes", "--ref", "provenance", "show", commit) == note_before
    # The same keys from outside the repository: verified, and the summary is signed.
    outside = tmp_path / "policy" / "provenance.toml"
    outside.parent.mkdir()
    shutil.copy(flake / "provenance.toml", outside)
    code, _, err = cli(
        "--flake", flake, "--policy", outside, "--sign-with", reviewer_key, "-o", vsa
    )
    assert code == 0, err
    assert vsa.exists()


# -- a statement for another system proves nothing about this one -----------------------

TWO_SYSTEMS = """{
  outputs = { self }:
    let
      tools = builtins.path { path = ./tools; name = "bootstrap-tools"; };
      mk = system: derivation {
        name = "det-check"; inherit system; salt = "@SALT@";
        builder = "${tools}/bin/busybox"; args = [ "sh" "-c" "echo ok > $out" ];
      };
    in {
      checks.@HERE@.det = mk "@HERE@";
      checks.@OTHER@.det = mk "@OTHER@";
    };
}
"""


def test_a_bound_statement_for_another_system_does_not_pass_this_one(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    here = current_system()
    other = "aarch64-linux" if here != "aarch64-linux" else "x86_64-linux"
    repo = tmp_path / "two"
    (repo / "tools" / "bin").mkdir(parents=True)
    shutil.copy2(find_static_busybox(), repo / "tools" / "bin" / "busybox")
    (repo / "flake.nix").write_text(
        TWO_SYSTEMS.replace("@HERE@", here)
        .replace("@OTHER@", other)
        .replace("@SALT@", uuid.uuid4().hex)
    )
    run(["git", "init", "-q"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "two systems"], cwd=repo)
    key, pub = keypair
    signer = keys.load_signer(key)
    report = attest.build(
        attest.BuildRequest(flake_dir=repo, signer=signer, attach_note=False), Nix()
    )
    mine = _payload(_line(_lines(report), "det"))
    # The same trusted key states the other system's det: bound, since it re-evaluates.
    head = git(repo, "rev-parse", "HEAD")
    ref = f"git+file://{repo}?rev={head}#checks.{other}.det"
    drv, out = nix("eval", "--raw", f"{ref}.drvPath"), nix("eval", "--raw", f"{ref}.outPath")
    ext = mine["predicate"]["buildDefinition"]["externalParameters"]
    ext.update(system=other, attribute=f"checks.{other}.det", drvPath=drv)
    mine["subject"] = [
        {
            "name": out,
            "digest": {"sha256": "ab" * 32},
            "annotations": {"nixOutput": "out", "nixStorePath": out},
        }
    ]
    _append_note(repo, _resign(mine, signer))
    code, out_json, err = cli("--flake", repo, "--trusted-key", pub, "--json")
    assert code == 1, err
    assert json.loads(out_json)["missing"] == ["det"]
    # ...while the same statement, given as a bundle, is verified for the system it names.
    bundle = _write(tmp_path, _resign(mine, signer))
    code, _, err = cli(bundle, "--flake", repo, "--trusted-key", pub)
    assert code == 0, err
