"""Issue 17: fewer processes per run, and every answer still what nix itself says.

Each saving is checked two ways: a logging wrapper around the real nix shows the call is
gone, and the signed fields it used to feed are compared with what that nix call prints
(the source's narHash and lock from `nix flake metadata`, the closure from `nix path-info
--derivation -r`, the log hash from `nix log`). Each test fails on the code before it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.doors.nix import Nix, current_system
from provenance.errors import UsageError
from provenance.formats.hashing import sha256_to_hex
from tests.conftest import git, make_flake, nix, run

pytestmark = pytest.mark.nix
SYSTEM = current_system()
SLSA = "https://slsa.dev/provenance/v1"


def logging_nix(tmp: Path) -> tuple[Path, Path]:
    """A `nix` that appends its argv (NUL-separated, ended by RS) to a log, then runs nix."""
    real = run(["sh", "-c", "command -v nix"]).stdout.strip()
    log = tmp / "nix-calls.log"
    wrapper = tmp / "bin" / "nix"
    wrapper.parent.mkdir()
    wrapper.write_text(  # under flock: nix calls run side by side, records must not interleave
        f"#!/bin/sh\n{{ flock 9; printf '%s\\0' \"$@\" >&9; printf '\\036' >&9; }} 9>> '{log}'\n"
        f"exec '{real}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper, log


def calls(log: Path) -> list[list[str]]:
    """Each nix call's words after the global flags (--option K V, the features flag)."""
    out = []
    for record in log.read_bytes().split(b"\036")[:-1]:
        words = record.decode().removesuffix("\0").split("\0")
        rest: list[str] = []
        i = 0
        while i < len(words):
            if words[i] == "--option":
                i += 3
            elif words[i] == "--extra-experimental-features":
                i += 2
            else:
                rest.append(words[i])
                i += 1
        out.append(rest)
    return out


def cli(*args: str | Path, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return result.stderr


def provenance_statements(repo: Path) -> list[dict[str, Any]]:
    found = []
    for bundle in (repo / ".provenance").glob("*.intoto.jsonl"):
        for ln in bundle.read_text().splitlines():
            stmt = json.loads(base64.b64decode(json.loads(ln)["payload"]))
            if stmt["predicateType"] == SLSA:
                found.append(stmt)
    return found


def test_a_forced_build_asks_nix_only_what_it_cannot_know_and_signs_what_nix_says(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    wrapper, log = logging_nix(tmp_path)
    key, _ = keypair
    cli("build", repo, "--key", key, "--check", "det", env={"PROVENANCE_NIX": str(wrapper)})
    log.write_bytes(b"")
    cli(
        "build",
        repo,
        "--key",
        key,
        "--check",
        "det",
        "--force",
        env={"PROVENANCE_NIX": str(wrapper)},
    )
    made = calls(log)
    kinds = [" ".join(w for w in c if not w.startswith(("/", "git+file:"))) for c in made]
    # Gone: flake metadata (the eval returns the source), path-info --derivation -r (the
    # .drv files are read), nix log (the log file is read), the second config read (no
    # config names a hook), repeated --version calls, the second path-info of the outputs.
    assert not any(c[:2] == ["flake", "metadata"] or c[:1] == ["log"] for c in made), kinds
    assert not any("--derivation" in c for c in made), kinds
    assert sum(c[:1] in (["show-config"], ["config"]) for c in made) == 1, kinds
    assert sum(c == ["--version"] for c in made) == 1, kinds
    assert len(made) == 7, kinds  # was 13 (issue 17)

    (stmt,) = provenance_statements(repo)
    deps = stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
    drv = stmt["predicate"]["buildDefinition"]["externalParameters"]["drvPath"]
    # The closure, as nix path-info --derivation -r records it: every path, every narHash.
    raw = json.loads(nix("path-info", "--json", "--derivation", "-r", drv))
    entries = raw.items() if isinstance(raw, dict) else [(e["path"], e) for e in raw]
    want = {p: sha256_to_hex(e["narHash"]) for p, e in entries}
    assert {d["name"]: d["digest"]["sha256"] for d in deps if d["name"].startswith("/")} == want
    # The source's narHash, as nix flake metadata prints it for the evaluated ref.
    ref = stmt["predicate"]["buildDefinition"]["internalParameters"]["evaluation"]["ref"]
    meta = json.loads(nix("flake", "metadata", "--json", ref))
    assert deps[0]["digest"]["sha256"] == sha256_to_hex(meta["locked"]["narHash"])
    # The log, as nix log prints it.
    (log_entry,) = [
        b for b in stmt["predicate"]["runDetails"]["byproducts"] if b["name"] == "build.log"
    ]
    printed = run(["nix", "--extra-experimental-features", "nix-command", "log", drv]).stdout
    assert log_entry["digest"]["sha256"] == hashlib.sha256(printed.encode()).hexdigest()


def test_a_cache_hit_runs_one_nix_process(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    repo = make_flake(tmp_path / "repo")
    wrapper, log = logging_nix(tmp_path)
    key, _ = keypair
    cli("build", repo, "--key", key, "--check", "det", env={"PROVENANCE_NIX": str(wrapper)})
    log.write_bytes(b"")
    err = cli("build", repo, "--key", key, "--check", "det", env={"PROVENANCE_NIX": str(wrapper)})
    assert "cache hit" in err
    # Only the evaluation: the nix facts a build needs are asked early only when the notes
    # hold no line of this key's, and these do.
    assert [c[0] for c in calls(log)] == ["eval"]


@pytest.mark.parametrize("subdir", ["sub", "sub+x"])  # `+` is no space in a flake ref
def test_the_pinned_eval_gives_what_flake_metadata_and_the_installable_give(
    tmp_path: Path, subdir: str
) -> None:
    # A flake in a subdirectory with a locked input: the lock is read from the evaluated
    # source, the narHash is the whole repository's, as `nix flake metadata` says.
    dep = tmp_path / "dep"
    dep.mkdir()
    (dep / "flake.nix").write_text('{ outputs = { self }: { value = "dep"; }; }\n')
    git(dep, "init", "-q")
    git(dep, "add", "-A")
    git(dep, "commit", "-qm", "dep")
    repo = make_flake(tmp_path / "repo", commit=False)
    sub = repo / subdir
    sub.mkdir()
    text = (repo / "flake.nix").read_text()
    (sub / "flake.nix").write_text(
        text.replace("{ self }", "{ self, dep }")
        .replace("./tools", "../tools")
        .replace("./tests", "../tests")
        .replace("./extra-checks.nix", "../extra-checks.nix")
        .replace("outputs =", f'inputs.dep.url = "git+file://{dep}";\n  outputs =', 1)
    )
    git(repo, "add", "-A")
    run(["nix", "--extra-experimental-features", "nix-command flakes", "flake", "lock", str(sub)])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sub flake")
    ref = f"git+file://{repo}?rev={git(repo, 'rev-parse', 'HEAD')}&dir={subdir}"
    n = Nix()
    checks, meta = n.eval_pinned(ref, SYSTEM, None, subdir)
    assert checks == n.eval_checks(ref, SYSTEM, None)
    # Everything a statement records is nix's; `url` is the ref as given (nix reorders it).
    theirs = n.flake_metadata(ref)
    assert replace(meta, url=theirs.url) == theirs
    assert [i.name for i in meta.inputs] == ["dep"] and meta.inputs[0].rev
    assert set(checks) >= {"det", "chain"}


def test_the_pinned_eval_says_no_checks_as_the_installable_does(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    ref = f"git+file://{repo}?rev={git(repo, 'rev-parse', 'HEAD')}"
    with pytest.raises(UsageError, match="the flake has no `checks` output"):
        Nix().eval_checks(ref, SYSTEM, None)
    with pytest.raises(UsageError, match="the flake has no `checks` output"):
        Nix().eval_pinned(ref, SYSTEM, None)
