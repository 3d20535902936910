"""Bundles are named per commit and key, a dirty tree's apart, and runs merge into them:
no signer, no dirty build and no concurrent build loses another's attestation.

With `--no-note` the bundle is the only copy of an attestation, so every test here runs
without notes. Real nix, real git, the CLI (in child processes where two run at once).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.attest import bundles
from provenance.audit import ledger as L
from provenance.cli import app
from provenance.formats import bundle, dsse, keys
from provenance.formats.claims import load_statement, parse_provenance
from tests.conftest import git, make_flake

pytestmark = pytest.mark.nix
runner = CliRunner()
SLSA = "https://slsa.dev/provenance/v1"


def _build(repo: Path, key: Path, *args: str) -> dict[str, object]:
    r = runner.invoke(app, ["build", "--key", str(key), str(repo), "--json", "-q", *args])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def _claims(path: Path, pub: Path) -> list[tuple[str, bool]]:
    """(check, dirty) of each provenance line in the bundle that `pub` signed."""
    key = keys.load_public_key(pub)
    found = []
    for env in bundle.read(path):
        stmt = load_statement(dsse.verify(env, [key]).payload)  # raises if not this key's
        if stmt["predicateType"] == SLSA:
            claim = parse_provenance(stmt)
            found.append((claim.check, claim.dirty))
    return sorted(found)


def test_a_second_signer_does_not_replace_the_first_signers_bundle(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "repo")
    alice, alice_pub, alice_id = keys.generate(tmp_path / "alice")
    bob, bob_pub, bob_id = keys.generate(tmp_path / "bob")
    first = _build(repo, alice, "--no-note")
    second = _build(repo, bob, "--no-note")
    commit = git(repo, "rev-parse", "HEAD")
    a, b = Path(str(first["bundle"])), Path(str(second["bundle"]))
    assert a.name == f"{commit}.{alice_id}.intoto.jsonl"
    assert b.name == f"{commit}.{bob_id}.intoto.jsonl"
    assert _claims(a, alice_pub) == [("chain", False), ("det", False)]
    assert _claims(b, bob_pub) == [("chain", False), ("det", False)]
    # The ledger names each bundle by a hash that is still the file's.
    entries = L.verify_chain(repo / ".provenance" / "ledger.jsonl", keep=True).items
    for entry in entries:
        (rec,) = entry.bundles
        assert hashlib.sha256(Path(rec.path).read_bytes()).hexdigest() == rec.sha256
    assert {e.bundles[0].path for e in entries} == {str(a), str(b)}


def test_builds_of_other_checks_of_the_commit_add_to_the_bundle(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, pub = keypair
    path = Path(str(_build(repo, key, "--no-note", "--check", "det")["bundle"]))
    assert Path(str(_build(repo, key, "--no-note", "--check", "chain")["bundle"])) == path
    assert _claims(path, pub) == [("chain", False), ("det", False)]
    # Re-attesting a check replaces this key's line for it, and only that one.
    before = path.read_bytes().splitlines()
    _build(repo, key, "--no-note", "--check", "det", "--force")
    assert _claims(path, pub) == [("chain", False), ("det", False)]
    after = path.read_bytes().splitlines()
    assert len(after) == len(before) and len(set(after) - set(before)) >= 1  # a new det line


def test_concurrent_builds_of_one_commit_and_key_lose_no_lines(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, pub = keypair
    env = {**os.environ, "PROVENANCE_LEDGER": "off"}
    cmd = [sys.executable, "-m", "provenance", "build", str(repo), "--key", str(key), "--no-note"]
    procs = [
        subprocess.Popen(
            [*cmd, "-q", "--check", check],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for check in ("det", "chain")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    (path,) = (repo / ".provenance").glob("*.intoto.jsonl")
    assert _claims(path, pub) == [("chain", False), ("det", False)]


def test_a_dirty_build_never_replaces_the_clean_bundle(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, pub = keypair
    clean = Path(str(_build(repo, key, "--no-note")["bundle"]))
    kept = clean.read_bytes()
    (repo / "tests" / "test_det.sh").write_text(
        (repo / "tests" / "test_det.sh").read_text() + "\n# an uncommitted edit\n"
    )
    dirty = Path(str(_build(repo, key, "--allow-dirty", "--check", "det")["bundle"]))
    assert dirty != clean and dirty.name.endswith(".dirty.intoto.jsonl")
    assert clean.read_bytes() == kept
    assert _claims(clean, pub) == [("chain", False), ("det", False)]
    assert _claims(dirty, pub) == [("det", True)]


def test_an_older_shared_bundle_is_read_and_left_alone(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, pub = keypair
    first = Path(str(_build(repo, key, "--no-note", "--check", "det")["bundle"]))
    commit = git(repo, "rev-parse", "HEAD")
    legacy = first.with_name(bundles.legacy_name(commit))  # as earlier versions named it
    first.rename(legacy)
    old = legacy.read_bytes()
    path = Path(str(_build(repo, key, "--no-note", "--check", "chain")["bundle"]))
    assert path == first
    assert _claims(path, pub) == [("chain", False), ("det", False)]
    assert legacy.read_bytes() == old


def test_output_naming_a_file_that_is_not_a_bundle_is_refused(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    readme = flake / "README.txt"
    readme.write_text("not a bundle\n")
    r = runner.invoke(app, ["build", "--key", str(keypair[0]), str(flake), "-o", str(readme)])
    assert r.exit_code == 2 and "not a bundle" in r.stderr, r.stderr
    assert readme.read_text() == "not a bundle\n"
