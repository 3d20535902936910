"""A reused attestation must be for the same definition of the check (issue 11, part 2).

The attack: commit P is attested. Commit C keeps a copy of P's tests as `tests-v1/`,
breaks `tests/`, and points flake.nix at the copy. `builtins.path` is content-addressed,
so det's drvPath is unchanged, and before the fix the gate skipped, verify passed and
build reported a cache hit, all on P's attestation. The check's definition changed;
its proof must be made again. Real nix, real git.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.attest import pipeline as attest
from provenance.ci.gate import GateRequest, gate
from provenance.cli import app
from provenance.doors.nix import Nix
from provenance.formats import keys
from provenance.policy.trust import from_key_files
from tests.conftest import git

pytestmark = pytest.mark.nix


def _build(repo: Path, key: Path) -> attest.BuildReport:
    return attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())


def _gate(repo: Path, pub: Path) -> tuple[bool, str, dict[str, str]]:
    report = gate(GateRequest(flake_dir=repo, policy=from_key_files([pub]), fetch=False), Nix())
    return report.skip, report.reason, {c.name: c.reason for c in report.checks}


def _rewire_onto_old_tests(repo: Path) -> str:
    """C: the same det derivation, built from a kept copy of the old tests."""
    shutil.copytree(repo / "tests", repo / "tests-v1")
    (repo / "tests" / "test_det.sh").write_text("echo '0 passed, 1 failed'; exit 1\n")
    flake = repo / "flake.nix"
    flake.write_text(flake.read_text().replace("path = ./tests;", "path = ./tests-v1;"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "keep the old tests for the check")
    return git(repo, "rev-parse", "HEAD")


# det exactly as flake.nix defines it, but with its tests named by store path: the
# string is given the context of P's tests with builtins.appendContext, which pure
# evaluation allows. This evaluation then really instantiates P's derivation.
BY_CONTEXT = """{ mk, tests }: {
  det = mk "det-check" "echo \\"running tests from $src\\"\\nbusybox mkdir -p $out\\nbusybox sh $src/test_det.sh | busybox tee $out/result.txt\\n" {
    src = builtins.appendContext "@SRC@" { "@SRC@" = { path = true; }; };
  };
}
"""


def _rewire_by_context(repo: Path, src: str) -> None:
    (repo / "tests" / "test_det.sh").write_text("echo '0 passed, 1 failed'; exit 1\n")
    (repo / "extra-checks.nix").write_text(BY_CONTEXT.replace("@SRC@", src))
    git(repo, "commit", "-qam", "name the old tests by store path")


@pytest.mark.parametrize("how", ["copy", "appendContext"])
def test_same_drvpath_new_definition_is_never_reused(
    flake: Path, keypair: tuple[Path, Path], how: str
) -> None:
    key, pub = keypair
    parent = _build(flake, key)
    det_p = next(c.drv_path for c in parent.checks if c.name == "det")
    if how == "copy":
        _rewire_onto_old_tests(flake)
    else:
        src = Nix().derivations([det_p])[det_p].env["src"]
        _rewire_by_context(flake, src)
    changed = "flake.nix" if how == "copy" else "extra-checks.nix"
    commit = git(flake, "rev-parse", "HEAD")
    now = Nix().check_drv_paths(f"git+file://{flake}?rev={commit}", parent.system, None)
    assert now["det"] == det_p  # the drvPath really is unchanged: only the definition differs

    # gate: run, naming what changed.
    skip, reason, per_check = _gate(flake, pub)
    assert not skip
    assert f"what defines the checks changed since ({changed})" in per_check["det"]
    assert parent.commit[:12] in per_check["det"]
    assert "reused" not in reason

    # verify (notes): P's statements are about another definition; nothing passes.
    result = CliRunner().invoke(app, ["verify", "--flake", str(flake), "--trusted-key", str(pub)])
    assert result.exit_code == 1, result.stderr
    assert "FAIL det: no attestation that passes verification" in result.stderr
    # ... and given as a bundle, the ancestor's statement fails with the reason.
    assert parent.bundle_path is not None
    result = CliRunner().invoke(
        app, ["verify", str(parent.bundle_path), "--flake", str(flake), "--trusted-key", str(pub)]
    )
    assert result.exit_code == 1
    assert f"what defines the checks changed since ({changed})" in result.stderr

    # build: no cache hit via P; the check is built (rebuilt and compared) and attested here.
    report = _build(flake, key)
    assert {c.name: (c.status, c.via) for c in report.checks} == {
        "det": ("attested", None),
        "chain": ("attested", None),
    }
    # Now C carries its own proof, and the gate may skip on it.
    skip, reason, _ = _gate(flake, pub)
    assert skip, reason


def test_build_reports_why_it_does_not_reuse(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    parent = _build(flake, key).commit
    _rewire_onto_old_tests(flake)
    result = CliRunner().invoke(app, ["build", str(flake), "--key", str(key)])
    assert result.exit_code == 0, result.stderr
    assert (
        f"det: attested on {parent[:12]} for the same drvPath, but what defines the checks "
        "changed since (flake.nix): attesting it again" in result.stderr
    )


def test_readme_commit_still_reuses_and_listed_data_does_not(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    """Non-definition files keep the cache; provenance.toml can add definition paths."""
    key, pub = keypair
    (flake / "provenance.toml").write_text('[definition]\npaths = ["config/*.json"]\n')
    (flake / "config").mkdir()
    (flake / "config" / "checks.json").write_text("{}\n")
    git(flake, "add", "-A")
    git(flake, "commit", "-qm", "list the checks' data")
    base = _build(flake, key).commit

    (flake / "README.md").write_text("docs\n")
    (flake / "config" / "notes.txt").write_text("not listed\n")
    git(flake, "add", "-A")
    git(flake, "commit", "-qm", "docs")
    skip, reason, _ = _gate(flake, pub)
    assert skip, reason
    assert f"reused the attestation of commit {base}" in reason
    report = _build(flake, key)
    assert {c.via for c in report.checks} == {base}

    (flake / "config" / "checks.json").write_text('{"changed": true}\n')
    git(flake, "commit", "-qam", "change listed data")
    skip, _, per_check = _gate(flake, pub)
    assert not skip
    assert "changed since (config/checks.json)" in per_check["det"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("flake.lock", '{"nodes": {"root": {}}, "root": "root", "version": 7}\n'),
        ("lib/helpers.nix", "{ }\n"),
        ("provenance.toml", "[trust]\n"),
    ],
)
def test_every_default_definition_file_counts(
    flake: Path, keypair: tuple[Path, Path], path: str, text: str
) -> None:
    """flake.lock, any .nix file of the repository, provenance.toml: none is imported by the
    fixture's checks (the drvPaths stay the same), yet each ends the reuse."""
    key, pub = keypair
    _build(flake, key)
    (flake / path).parent.mkdir(parents=True, exist_ok=True)
    (flake / path).write_text(text)
    git(flake, "add", "-A")
    git(flake, "commit", "-qm", f"add {path}")
    skip, _, per_check = _gate(flake, pub)
    assert not skip
    assert f"changed since ({path})" in per_check["chain"]
    done = subprocess.run(
        ["git", "-C", str(flake), "notes", "--ref", "provenance", "show", "HEAD"],
        capture_output=True,
        check=False,
    )
    assert done.returncode != 0  # and nothing was attested on the new commit meanwhile
