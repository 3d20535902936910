"""Weakened tests cannot make the gate skip without a trusted reviewer's approval (issue 16).

Real repositories, real attestations by real Nix (reviewrepo.py: main has three checks,
one of which lists its tests by id, and is attested by alice). Each test makes one change
on a branch, attests it with alice, and runs `provenance gate --base refs/heads/main` as
CI would, before and after carol (a reviewer of main's policy) approves it with
`provenance approve`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.formats import keys
from tests.conftest import git
from tests.integration.reviewrepo import (
    Gate,
    Keys,
    approve,
    attest_with,
    cli,
    commit,
    gate,
    suite_script,
)

pytestmark = pytest.mark.nix


def _kinds(g: Gate) -> list[tuple[str, str, str | None, bool]]:
    review = g.report["review"]
    return [(d["check"], d["kind"], d.get("test"), d["blocks"]) for d in review["deltas"]]


def test_deleting_a_test_needs_an_approval_that_names_it(
    repo: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, k = repo
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    g = gate(path, tmp_path)
    # Every check is attested for its exact drvPath: only the comparison stops the skip.
    assert all(c["passed"] for c in g.report["checks"])
    assert not g.skip
    assert "test removed: test_mul" in g.reason and "not approved" in g.reason
    assert _kinds(g) == [
        ("suite", "fewer-tests", None, True),
        ("suite", "removed-test", "test_mul", True),
    ]
    assert [p["path"] for p in g.report["review"]["protectedPaths"]] == ["tests/suite.sh"]
    # The PR summary: counts per changed check, and one row per delta and protected path.
    assert "| suite | 3 passed, 0 failed, 0 skipped | 2 passed, 0 failed, 0 skipped |" in g.summary
    assert "| suite | test removed: test_mul | - | yes |" in g.summary
    assert "| `tests/suite.sh` | modified (protected: `tests/**`) | - | yes |" in g.summary

    done = approve(path, k.carol, "--reason", "test_mul moved to the integration suite")
    assert done.returncode == 0, done.stderr
    assert "suite: test removed: test_mul" in done.stderr
    g = gate(path, tmp_path)
    assert g.skip, g.reason
    assert "approved by carol" in g.reason
    assert all(d["approvedBy"] == ["carol"] for d in g.report["review"]["deltas"])
    assert "| suite | test removed: test_mul | carol | no |" in g.summary

    # verify --base applies the same rule: passes now, with the approval on the note.
    done = cli(
        "verify",
        "--flake",
        str(path),
        "--trusted-key",
        str(k.pub("alice")),
        "--base",
        "refs/heads/main",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["review"]["ok"] is True


def test_verify_base_fails_an_unapproved_removal(repo: tuple[Path, Keys]) -> None:
    path, k = repo
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    done = cli(
        "verify",
        "--flake",
        str(path),
        "--trusted-key",
        str(k.pub("alice")),
        "--base",
        "refs/heads/main",
    )
    assert done.returncode == 1
    assert "FAIL base refs/heads/main: tests weakened" in done.stderr
    assert "suite: test removed: test_mul [not approved]" in done.stderr
    # Without --base nothing compares, and the same attestations verify.
    done = cli("verify", "--flake", str(path), "--trusted-key", str(k.pub("alice")))
    assert done.returncode == 0, done.stderr


def test_skipping_a_test_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    skipped = suite_script("ok 1 - test_add", "ok 2 - test_mul # SKIP flaky", "ok 3 - test_sub")
    commit(path, {"tests/suite.sh": skipped})
    attest_with(path, k.alice)
    g = gate(path, tmp_path)
    assert not g.skip
    assert _kinds(g) == [("suite", "newly-skipped", "test_mul", True)]
    assert "newly skipped: test_mul" in g.reason
    assert approve(path, k.carol).returncode == 0
    assert gate(path, tmp_path).skip


def test_removing_a_check_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    commit(path, {"extra-checks.nix": "{ mk, tests }: { }\n"})
    attest_with(path, k.alice)
    g = gate(path, tmp_path)
    assert not g.skip
    assert _kinds(g) == [("suite", "removed-check", None, True)]
    assert [p["path"] for p in g.report["review"]["protectedPaths"]] == ["extra-checks.nix"]
    assert "suite: check removed" in g.reason
    assert approve(path, k.carol).returncode == 0
    assert gate(path, tmp_path).skip


def test_editing_flake_nix_only_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    flake = (path / "flake.nix").read_text()
    commit(path, {"flake.nix": flake + "# reformatted\n"})
    attest_with(path, k.alice)  # a new definition: attested again, same drvPaths
    g = gate(path, tmp_path)
    assert not g.skip
    assert g.report["review"]["deltas"] == []
    assert all(t["sameDrvPath"] for t in g.report["review"]["checks"])
    assert "protected paths changed (flake.nix modified)" in g.reason
    assert approve(path, k.carol).returncode == 0
    g = gate(path, tmp_path)
    assert g.skip, g.reason


def test_readme_only_skips_as_before(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    commit(path, {"README.md": "docs only\n"})
    g = gate(path, tmp_path)  # nothing attested on the change: the base's proofs are reused
    assert g.skip, g.reason
    assert "no test deltas or protected-path changes against refs/heads/main" in g.reason
    assert "No test deltas and no protected-path changes." in g.summary
    # Nothing to approve: refused, with JSON on stdout too.
    done = approve(path, k.carol, "--json")
    assert done.returncode == 2
    assert "nothing to approve" in json.loads(done.stdout)["error"]


def test_an_approval_of_other_deltas_does_not_count(
    repo: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, k = repo
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    assert approve(path, k.carol).returncode == 0  # approves removing test_mul
    assert gate(path, tmp_path).skip
    # The next commit also removes test_sub: the approval named test_mul only, and the
    # edited tests/suite.sh is another blob than the one approved.
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add")})
    attest_with(path, k.alice)
    g = gate(path, tmp_path)
    assert not g.skip
    blocking = [(d["kind"], d.get("test")) for d in g.report["review"]["deltas"] if d["blocks"]]
    assert blocking == [("fewer-tests", None), ("removed-test", "test_sub")]
    removed_mul = next(d for d in g.report["review"]["deltas"] if d.get("test") == "test_mul")
    assert removed_mul["approvedBy"] == ["carol"] and not removed_mul["blocks"]
    assert g.report["review"]["protectedPaths"][0]["blocks"] is True
    assert "test removed: test_sub" in g.reason


def test_approvals_by_build_keys_or_strangers_do_not_count(
    repo: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, k = repo
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    # alice can attest, so she must not approve her own weakening.
    done = approve(path, k.alice)
    assert done.returncode == 0
    assert "not a reviewer" in done.stderr
    mallory = keys.generate(tmp_path / "mallory")[0]
    assert approve(path, mallory).returncode == 0
    g = gate(path, tmp_path)
    assert not g.skip
    assert all(d["approvedBy"] == [] for d in g.report["review"]["deltas"])


def test_a_base_without_attested_tests_is_doubt(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    git(path, "notes", "--ref", "provenance", "remove", "main")
    commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    attest_with(path, k.alice)
    g = gate(path, tmp_path)
    assert not g.skip
    assert g.reason.startswith("in doubt against refs/heads/main")
    assert "no trusted attestation of the base's tests" in g.reason
    # A doubt is never approved away: approve refuses (exit 3).
    done = approve(path, k.carol)
    assert done.returncode == 3
    assert "cannot approve what is not known" in done.stderr
