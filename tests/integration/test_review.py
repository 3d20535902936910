"""Weakened tests cannot make the gate skip without a trusted reviewer's approval (issue 16).

Real repositories, real attestations by real Nix: the base branch `main` defines three
checks (det and chain of the fixture flake, and `suite`, whose TAP report lists its three
tests by id) and is attested by alice. Each test makes one change on a branch, attests it
with alice, and runs `provenance gate --base refs/heads/main` as CI would, before and
after carol (a reviewer of main's policy) approves it with `provenance approve`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provenance.attest import pipeline as attest
from provenance.doors.nix import Nix
from provenance.formats import keys
from tests.conftest import git, isolate, make_flake

pytestmark = pytest.mark.nix

SUITE_CHECK = (
    '{ mk, tests }: { suite = mk "suite-check" "busybox sh $src/suite.sh" { src = tests; }; }\n'
)
TESTS = ("test_add", "test_mul", "test_sub")


def suite_script(*lines: str) -> str:
    """tests/suite.sh: writes a TAP report of these result lines to $out/results.tap."""
    body = "\\n".join([f"1..{len(lines)}", *lines])
    return f"busybox mkdir -p $out\nbusybox printf '{body}\\n' > $out/results.tap\n"


FULL = suite_script(*(f"ok {i} - {t}" for i, t in enumerate(TESTS, 1)))


@dataclass(frozen=True)
class Keys:
    alice: Path  # build key (trusted)
    bob: Path  # second build key (trusted)
    carol: Path  # reviewer key
    dir: Path

    def pub(self, who: str) -> Path:
        return self.dir / who / "provenance.pub"


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Keys]]:
    root = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp)
        ks = {}
        for who in ("alice", "bob", "carol"):
            ks[who] = keys.generate(root / "keys" / who)[0]
        k = Keys(ks["alice"], ks["bob"], ks["carol"], root / "keys")
        repo = make_flake(root / "repo", extra_checks=SUITE_CHECK, commit=False)
        (repo / "tests" / "suite.sh").write_text(FULL)
        for name in ("alice", "bob"):
            _cli("trust", "add", name, str(k.pub(name)), "--policy", str(repo / "provenance.toml"))
        _cli(
            "trust",
            "add",
            "carol",
            str(k.pub("carol")),
            "--reviewer",
            "--policy",
            str(repo / "provenance.toml"),
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "base")
        git(repo, "branch", "-M", "main")
        _attest(repo, k.alice)
        yield repo, k


@pytest.fixture
def repo(base_repo: tuple[Path, Keys], tmp_path: Path) -> tuple[Path, Keys]:
    src, k = base_repo
    dest = tmp_path / "repo"
    shutil.copytree(src, dest, symlinks=True)
    git(dest, "checkout", "-q", "-b", "change")
    return dest, k


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _attest(repo: Path, key: Path) -> attest.BuildReport:
    return attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())


def _commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    for name, text in files.items():
        if text is None:
            (repo / name).unlink()
        else:
            (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Gate:
    skip: bool
    reason: str
    summary: str
    report: dict[str, Any]
    stderr: str


def _gate(repo: Path, tmp_path: Path, *extra: str) -> Gate:
    out, summary = tmp_path / "gh-output", tmp_path / "gh-summary"
    out.write_text("")
    summary.write_text("")
    done = _cli(
        "gate",
        str(repo),
        "--policy-ref",
        "refs/heads/main",
        "--base",
        "refs/heads/main",
        "--json",
        *extra,
        env={"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert done.returncode == 0, done.stderr
    pairs = dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)
    return Gate(
        pairs["skip"] == "true",
        pairs["reason"],
        summary.read_text(),
        json.loads(done.stdout),
        done.stderr,
    )


def _approve(repo: Path, key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        "approve", "--flake", str(repo), "--key", str(key), "--base", "refs/heads/main", *extra
    )


def _kinds(g: Gate) -> list[tuple[str, str, str | None, bool]]:
    review = g.report["review"]
    return [(d["check"], d["kind"], d.get("test"), d["blocks"]) for d in review["deltas"]]


def test_deleting_a_test_needs_an_approval_that_names_it(
    repo: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, k = repo
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    _attest(path, k.alice)
    g = _gate(path, tmp_path)
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

    done = _approve(path, k.carol, "--reason", "test_mul moved to the integration suite")
    assert done.returncode == 0, done.stderr
    assert "suite: test removed: test_mul" in done.stderr
    g = _gate(path, tmp_path)
    assert g.skip, g.reason
    assert "approved by carol" in g.reason
    assert all(d["approvedBy"] == ["carol"] for d in g.report["review"]["deltas"])
    assert "| suite | test removed: test_mul | carol | no |" in g.summary

    # verify --base applies the same rule: passes now, with the approval on the note.
    done = _cli(
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
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    _attest(path, k.alice)
    done = _cli(
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
    done = _cli("verify", "--flake", str(path), "--trusted-key", str(k.pub("alice")))
    assert done.returncode == 0, done.stderr


def test_skipping_a_test_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    skipped = suite_script("ok 1 - test_add", "ok 2 - test_mul # SKIP flaky", "ok 3 - test_sub")
    _commit(path, {"tests/suite.sh": skipped})
    _attest(path, k.alice)
    g = _gate(path, tmp_path)
    assert not g.skip
    assert _kinds(g) == [("suite", "newly-skipped", "test_mul", True)]
    assert "newly skipped: test_mul" in g.reason
    assert _approve(path, k.carol).returncode == 0
    assert _gate(path, tmp_path).skip


def test_removing_a_check_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    _commit(path, {"extra-checks.nix": "{ mk, tests }: { }\n"})
    _attest(path, k.alice)
    g = _gate(path, tmp_path)
    assert not g.skip
    assert _kinds(g) == [("suite", "removed-check", None, True)]
    assert [p["path"] for p in g.report["review"]["protectedPaths"]] == ["extra-checks.nix"]
    assert "suite: check removed" in g.reason
    assert _approve(path, k.carol).returncode == 0
    assert _gate(path, tmp_path).skip


def test_editing_flake_nix_only_needs_an_approval(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    flake = (path / "flake.nix").read_text()
    _commit(path, {"flake.nix": flake + "# reformatted\n"})
    _attest(path, k.alice)  # a new definition: attested again, same drvPaths
    g = _gate(path, tmp_path)
    assert not g.skip
    assert g.report["review"]["deltas"] == []
    assert all(t["sameDrvPath"] for t in g.report["review"]["checks"])
    assert "protected paths changed (flake.nix modified)" in g.reason
    assert _approve(path, k.carol).returncode == 0
    g = _gate(path, tmp_path)
    assert g.skip, g.reason


def test_readme_only_skips_as_before(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    _commit(path, {"README.md": "docs only\n"})
    g = _gate(path, tmp_path)  # nothing attested on the change: the base's proofs are reused
    assert g.skip, g.reason
    assert "no test deltas or protected-path changes against refs/heads/main" in g.reason
    assert "No test deltas and no protected-path changes." in g.summary
    # Nothing to approve: refused, with JSON on stdout too.
    done = _approve(path, k.carol, "--json")
    assert done.returncode == 2
    assert "nothing to approve" in json.loads(done.stdout)["error"]


def test_an_approval_of_other_deltas_does_not_count(
    repo: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, k = repo
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    _attest(path, k.alice)
    assert _approve(path, k.carol).returncode == 0  # approves removing test_mul
    assert _gate(path, tmp_path).skip
    # The next commit also removes test_sub: the approval named test_mul only, and the
    # edited tests/suite.sh is another blob than the one approved.
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add")})
    _attest(path, k.alice)
    g = _gate(path, tmp_path)
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
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    _attest(path, k.alice)
    # alice can attest, so she must not approve her own weakening.
    done = _approve(path, k.alice)
    assert done.returncode == 0
    assert "not a reviewer" in done.stderr
    mallory = keys.generate(tmp_path / "mallory")[0]
    assert _approve(path, mallory).returncode == 0
    g = _gate(path, tmp_path)
    assert not g.skip
    assert all(d["approvedBy"] == [] for d in g.report["review"]["deltas"])


def test_a_base_without_attested_tests_is_doubt(repo: tuple[Path, Keys], tmp_path: Path) -> None:
    path, k = repo
    git(path, "notes", "--ref", "provenance", "remove", "main")
    _commit(path, {"tests/suite.sh": suite_script("ok 1 - test_add", "ok 2 - test_sub")})
    _attest(path, k.alice)
    g = _gate(path, tmp_path)
    assert not g.skip
    assert g.reason.startswith("in doubt against refs/heads/main")
    assert "no trusted attestation of the base's tests" in g.reason
    # A doubt is never approved away: approve refuses (exit 3).
    done = _approve(path, k.carol)
    assert done.returncode == 3
    assert "cannot approve what is not known" in done.stderr
