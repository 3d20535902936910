"""A repository whose path has a space, non-ASCII, `#` and `?` builds, verifies and gates.

The path goes into `git+file://` flake URLs; pasted in raw, Nix cut it at the `#` or `?`
and said the flake was not in git (`git add flake.nix`?). Real nix, real git, the CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.formats import bundle, dsse, keys
from provenance.formats.claims import load_statement, parse_provenance
from provenance.formats.uris import local_path
from tests.conftest import git, make_flake, run

pytestmark = pytest.mark.nix
runner = CliRunner()
ODD = "my repo #1?é"


def _build_verify_gate(flake: Path, top: Path, key: Path, pub: Path) -> None:
    r = runner.invoke(app, ["build", "--key", str(key), str(flake), "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    assert "git add flake.nix" not in r.stderr
    built = json.loads(r.stdout)
    assert {c["status"] for c in built["checks"]} == {"attested"}
    # The statement names this repository, decodably: the URL is not cut at `#` or `?`.
    env = bundle.read(Path(built["bundle"]))[0]
    claim = parse_provenance(load_statement(dsse.verify(env, [keys.load_public_key(pub)]).payload))
    assert local_path(claim.flake) == str(top)
    assert "#" not in claim.flake.split("://", 1)[1] and " " not in claim.flake

    r = runner.invoke(app, ["verify", "--trusted-key", str(pub), "--flake", str(flake)])
    assert r.exit_code == 0, r.stderr
    assert "verified:" in r.stderr and "a copy of this repository" not in r.stderr

    r = runner.invoke(app, ["gate", str(flake), "--trusted-key", str(pub), "--no-fetch", "--json"])
    assert r.exit_code == 0, r.stderr
    decision = json.loads(r.stdout)
    assert decision["skip"] is True, decision["reason"]


def test_repo_path_with_space_hash_question_mark_and_non_ascii(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    repo = make_flake(tmp_path / ODD)
    _build_verify_gate(repo, repo, key, pub)


def test_flake_in_an_odd_subdirectory_of_an_odd_repo(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    top = tmp_path / ODD
    top.mkdir()
    flake = make_flake(top / "sub dir#2", commit=False)
    shutil.rmtree(flake / ".git")
    run(["git", "init", "-q"], cwd=top)
    run(["git", "add", "-A"], cwd=top)
    run(["git", "commit", "-q", "-m", "fixture"], cwd=top)
    assert git(top, "status", "--porcelain") == ""
    _build_verify_gate(flake, top, key, pub)
