"""`build --closure digest` (issue 17): the closure listed by digest, and still checked.

The statement lists the check's .drv, its direct inputs and every fixed-output derivation,
and one `closure` entry whose digest is recomputed here from `nix path-info --derivation
-r`, independently of the code under test. `verify` recomputes it too and fails a
statement whose signed digest or count is not the drvPath's closure; `gate` accepts it as
it accepts a full listing; a full listing too big to be read is refused, never signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.doors.nix import Derivation, current_system, parse_derivations
from provenance.formats import dsse, keys
from provenance.formats.hashing import sha256_to_hex
from tests.conftest import git, isolate, make_flake, nix

pytestmark = pytest.mark.nix
SYSTEM = current_system()
SLSA = "https://slsa.dev/provenance/v1"
# A check on a fixed-output input ("hi\n", fetched by no one: the sandbox builds it).
FOD = """{ mk, tests }: {
  withfod = mk "withfod-check" "busybox cat $dep > $out" {
    dep = mk "fod-input" "echo hi > $out" {
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash = "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";
    };
  };
}
"""


def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    print(result.stderr)
    return result.exit_code, result.stderr


def lines(repo: Path) -> dict[str, str]:
    found = {}
    for bundle in (repo / ".provenance").glob("*.intoto.jsonl"):
        for ln in bundle.read_text().splitlines():
            stmt = payload(ln)
            if stmt["predicateType"] == SLSA:
                found[stmt["predicate"]["buildDefinition"]["externalParameters"]["check"]] = ln
    return found


def payload(line: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(line)["payload"]))  # type: ignore[no-any-return]


def closure_by_nix(drv: str) -> dict[str, str]:
    raw = json.loads(nix("path-info", "--json", "--derivation", "-r", drv))
    entries = raw.items() if isinstance(raw, dict) else [(e["path"], e) for e in raw]
    return {p: sha256_to_hex(e["narHash"]) for p, e in entries}


def show_derivation(drv: str) -> Derivation:
    """The derivation as nix shows it (`derivation show` since 2.15, `show-derivation` before),
    read by the door's parser, which knows every release's shape (2.34: `inputs.drvs`)."""
    try:
        shown = json.loads(nix("derivation", "show", drv))
    except AssertionError:
        shown = json.loads(nix("show-derivation", drv))
    return parse_derivations(shown)[drv]


@pytest.fixture(scope="module")
def attested(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Path, Path, dict[str, str]]]:
    # Module-scoped, so outside the autouse per-test isolation: the same environment (git
    # identity, offline nix settings) set here, as in test_verify's builder.
    tmp = tmp_path_factory.mktemp("digest")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp)
        repo = make_flake(tmp / "repo", extra_checks=FOD)
        key, pub, _ = keys.generate(tmp / "keys")
        code, _ = cli("build", repo, "--key", key, "--closure", "digest")
        assert code == 0
        yield repo, key, pub, lines(repo)


def test_the_digest_covers_exactly_the_closure_nix_reports(
    attested: tuple[Path, Path, Path, dict[str, str]],
) -> None:
    _, _, _, found = attested
    for check in ("chain", "withfod"):
        definition = payload(found[check])["predicate"]["buildDefinition"]
        assert definition["internalParameters"]["closureListing"] == "digest"
        drv = definition["externalParameters"]["drvPath"]
        closure = closure_by_nix(drv)
        deps = definition["resolvedDependencies"]
        (whole,) = [d for d in deps if d["name"] == "closure"]
        text = "".join(f"{p} {h}\n" for p, h in sorted(closure.items()))
        assert whole["digest"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert whole["annotations"] == {
            "entries": len(closure),
            "format": "provenance/closure-digest v1",
            "kind": "closure",
        }
        listed = {d["name"]: d for d in deps if d["name"].startswith("/")}
        # The .drv, what it builds on directly, every fixed-output drv: with nix's hashes.
        info = show_derivation(drv)
        fods = {p for p in closure if p.endswith("fod-input.drv")}
        assert set(listed) == {drv, *info.input_drvs, *info.input_srcs, *fods}
        assert all(listed[p]["digest"]["sha256"] == closure[p] for p in listed)
        assert all(listed[p]["annotations"].get("fixedOutput") is True for p in fods)
        assert (check == "withfod") == bool(fods)


def test_verify_and_gate_accept_the_digest(
    attested: tuple[Path, Path, Path, dict[str, str]],
) -> None:
    repo, _, pub, found = attested
    bundle = repo / "chain.intoto.jsonl"
    bundle.write_text(found["chain"] + "\n")
    code, err = cli("verify", "--flake", repo, "--trusted-key", pub, bundle)
    assert code == 0
    assert "OK   chain bound/closure: the digest of the" in err
    code, err = cli("gate", repo, "--trusted-key", pub)
    assert code == 0 and "skip=true" in err


@pytest.mark.parametrize(
    ("lie", "shown"),
    [
        (lambda whole: whole["digest"].update(sha256="0" * 64), "is not the closure of"),
        (lambda whole: whole["annotations"].update(entries=1), "is not the closure of"),
    ],
)
def test_a_signed_digest_that_is_not_the_closure_fails(
    attested: tuple[Path, Path, Path, dict[str, str]], tmp_path: Path, lie: Any, shown: str
) -> None:
    repo, key, pub, found = attested
    stmt = payload(found["chain"])
    (whole,) = [
        d
        for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
        if d["name"] == "closure"
    ]
    lie(whole)
    body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    bundle = tmp_path / "lie.intoto.jsonl"
    bundle.write_text(dsse.sign(body, [keys.load_signer(key)]).to_json() + "\n")
    code, err = cli("verify", "--flake", repo, "--trusted-key", pub, bundle)
    assert code == 1
    assert "FAIL chain bound/closure" in err and shown in err


def test_a_digest_listing_without_its_entry_is_not_read(
    attested: tuple[Path, Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, key, pub, found = attested
    for change in ("drop", "unknown"):
        stmt = payload(found["chain"])
        definition = stmt["predicate"]["buildDefinition"]
        if change == "drop":
            definition["resolvedDependencies"] = [
                d for d in definition["resolvedDependencies"] if d["name"] != "closure"
            ]
        else:
            definition["internalParameters"]["closureListing"] = "some"
        body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
        bundle = tmp_path / f"{change}.intoto.jsonl"
        bundle.write_text(dsse.sign(body, [keys.load_signer(key)]).to_json() + "\n")
        code, err = cli("verify", "--flake", repo, "--trusted-key", pub, bundle)
        assert code == 1 and "authentic/statement" in err, change


def test_a_full_listing_too_big_to_read_is_refused_and_auto_uses_the_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the closure were 100,000 paths (36 MB listed): the limits shrink instead.
    from provenance.attest import checks  # noqa: PLC0415

    monkeypatch.setattr(dsse, "MAX_ENVELOPE_BYTES", 2000)
    repo = make_flake(tmp_path / "repo")
    key, _, _ = keys.generate(tmp_path / "keys")
    code, err = cli("build", repo, "--key", key, "--check", "chain", "--closure", "full")
    assert code == 3 and "over the 2,000-byte envelope limit" in err
    assert "--closure digest" in err
    assert not list((repo / ".provenance").glob("*.intoto.jsonl"))
    monkeypatch.setattr(dsse, "MAX_ENVELOPE_BYTES", 16 * 1024 * 1024)
    monkeypatch.setattr(checks, "AUTO_FULL_MAX_BYTES", 100)
    code, _ = cli("build", repo, "--key", key, "--check", "chain")
    assert code == 0
    definition = payload(lines(repo)["chain"])["predicate"]["buildDefinition"]
    assert definition["internalParameters"]["closureListing"] == "digest"


def test_a_full_listing_is_the_default_for_a_small_closure(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "repo")
    key, _, _ = keys.generate(tmp_path / "keys")
    code, _ = cli("build", repo, "--key", key, "--check", "chain")
    assert code == 0
    definition = payload(lines(repo)["chain"])["predicate"]["buildDefinition"]
    assert "closureListing" not in definition["internalParameters"]
    drv = definition["externalParameters"]["drvPath"]
    assert {
        d["name"] for d in definition["resolvedDependencies"] if d["name"].startswith("/")
    } == set(closure_by_nix(drv))
    assert git(repo, "notes", "--ref", "provenance", "list")
