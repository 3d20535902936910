"""What a statement records about its build, gate and verify enforce (nixenv.recorded_problem).

A trusted key's statement whose recorded environment does not prove the claim (sandbox
off, fallback on, host paths in the sandbox, a hook, an unknown outputCheck, settings not
recorded, subjects that are not the outputs) must fail `verify` and make `gate` say run,
naming the field. Forged with the trusted key itself: the signature is not the question.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.attest import pipeline as attest
from provenance.ci import gate as g
from provenance.cli import app
from provenance.doors.nix import Nix
from provenance.formats import dsse, keys
from provenance.policy.trust import from_key_files, load_policy
from tests.conftest import git, isolate, make_flake

pytestmark = pytest.mark.nix

PAIR = """{ mk, tests }: {
  pair = mk "pair" "busybox mkdir $out $res; echo a > $out/a; echo b > $res/b"
    { outputs = [ "out" "res" ]; };
}
"""


@dataclass(frozen=True)
class Built:
    repo: Path
    pub: Path
    signer: keys.Signer
    commit: str
    stmts: dict[str, dict[str, Any]]  # check -> provenance statement


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("recorded")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp)
        repo = make_flake(base / "repo", extra_checks=PAIR)
        key, pub, _ = keys.generate(base / "keys")
        signer = keys.load_signer(key)
        report = attest.build(
            attest.BuildRequest(flake_dir=repo, signer=signer, checks=("det", "pair")), Nix()
        )
        assert report.bundle_path is not None
        stmts = {}
        for ln in report.bundle_path.read_text().splitlines():
            stmt = json.loads(base64.b64decode(json.loads(ln)["payload"]))
            if stmt["predicateType"] == "https://slsa.dev/provenance/v1":
                stmts[stmt["predicate"]["buildDefinition"]["externalParameters"]["check"]] = stmt
        yield Built(repo, pub, signer, report.commit, stmts)


def _sign(b: Built, stmt: dict[str, Any]) -> str:
    body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    return dsse.sign(body, [b.signer]).to_json()


def _nix(stmt: dict[str, Any]) -> dict[str, Any]:
    return stmt["predicate"]["buildDefinition"]["internalParameters"]["nix"]  # type: ignore[no-any-return]


def _internal(stmt: dict[str, Any]) -> dict[str, Any]:
    return stmt["predicate"]["buildDefinition"]["internalParameters"]  # type: ignore[no-any-return]


def _forge(b: Built, check: str, change: Callable[[dict[str, Any]], None]) -> str:
    stmt = json.loads(json.dumps(b.stmts[check]))
    change(stmt)
    return _sign(b, stmt)


FORGERIES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("sandbox-off", "det", lambda s: _nix(s).update(sandbox=False), "nix.sandbox is False"),
    ("relaxed", "det", lambda s: _nix(s).update(sandbox="relaxed"), "nix.sandbox is 'relaxed'"),
    (
        "fallback-on",
        "det",
        lambda s: _nix(s).update(sandboxFallback=True),
        "nix.sandboxFallback is True",
    ),
    (
        "sandbox-paths",
        "det",
        lambda s: _nix(s).update(sandboxPaths=["/=/"]),
        "nix.sandboxPaths has /=/",
    ),
    (
        "unknown-output-check",
        "det",
        lambda s: _internal(s).update(outputCheck="not-built-at-all"),
        "outputCheck 'not-built-at-all' is not a known check",
    ),
    (
        "no-settings",
        "det",
        lambda s: _nix(s).pop("settings"),
        "nix.settings is missing",
    ),
    (
        "post-build-hook",
        "det",
        lambda s: _nix(s)["settings"].update({"post-build-hook": "/etc/nix/upload.sh"}),
        "nix.settings.post-build-hook is '/etc/nix/upload.sh'",
    ),
    (
        "remote-builders",
        "det",
        lambda s: _nix(s)["settings"].update(builders="ssh://elsewhere"),
        "nix.settings.builders",
    ),
    (
        "substituted",
        "det",
        lambda s: _nix(s)["settings"].update(substitute=True),
        "nix.settings.substitute is True",
    ),
    (
        "unknown-enforcement",
        "det",
        lambda s: _nix(s).update(sandboxEnforcement="trust-me"),
        "nix.sandboxEnforcement is 'trust-me'",
    ),
    (
        "unknown-dependency-label",
        "det",
        lambda s: _internal(s).update(dependencyOutputs="contents-verified"),
        "dependencyOutputs 'contents-verified' is not a known value",
    ),
]


def _verify(b: Built, tmp_path: Path, line: str, *extra: str | Path) -> tuple[int, str]:
    bundle = tmp_path / "forged.intoto.jsonl"
    bundle.write_text(line + "\n")
    args = ["verify", str(bundle), "--flake", str(b.repo), *map(str, extra)]
    if "--policy" not in extra:
        args += ["--trusted-key", str(b.pub)]
    result = CliRunner().invoke(app, args)
    print(result.stderr)
    return result.exit_code, result.stderr


def _gate(b: Built, line: str, policy_file: Path | None = None) -> g.GateReport:
    git(b.repo, "notes", "--ref", "refs/notes/provenance", "add", "-f", "-m", line, b.commit)
    policy = load_policy(policy_file) if policy_file else from_key_files([b.pub])
    return g.gate(g.GateRequest(flake_dir=b.repo, policy=policy, required=("det",)), Nix())


@pytest.mark.parametrize(
    ("check", "change", "field"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES]
)
def test_a_wrong_recorded_environment_fails_verify_and_gate(
    built: Built,
    tmp_path: Path,
    check: str,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    line = _forge(built, check, change)
    code, err = _verify(built, tmp_path, line)
    assert code == 1 and "bound/environment" in err and field in err
    report = _gate(built, line)
    assert report.skip is False and field in report.reason


def test_the_honest_statement_passes_both(built: Built, tmp_path: Path) -> None:
    line = _sign(built, built.stmts["det"])  # the same statement, re-signed unchanged
    code, err = _verify(built, tmp_path, line)
    assert code == 0 and "OK   det bound/environment" in err
    assert _gate(built, line).skip is True


def test_gate_requires_every_output_as_a_subject(built: Built) -> None:
    def drop_res(s: dict[str, Any]) -> None:
        s["subject"] = [x for x in s["subject"] if x["annotations"]["nixOutput"] == "out"]

    line = _forge(built, "pair", drop_res)
    git(
        built.repo, "notes", "--ref", "refs/notes/provenance", "add", "-f", "-m", line, built.commit
    )
    policy = from_key_files([built.pub])
    req = g.GateRequest(flake_dir=built.repo, policy=policy, required=("pair",))
    report = g.gate(req, Nix())
    assert report.skip is False and "subjects are not exactly the check's outputs" in report.reason
    honest = _sign(built, built.stmts["pair"])
    git(
        built.repo,
        "notes",
        "--ref",
        "refs/notes/provenance",
        "add",
        "-f",
        "-m",
        honest,
        built.commit,
    )
    assert g.gate(req, Nix()).skip is True


def test_sandbox_paths_pass_only_when_the_policy_allows_them(built: Built, tmp_path: Path) -> None:
    # Debian 13+'s Nix binds /bin/sh into every sandbox; a daemon we cannot override
    # records it. A policy may allow exactly that path, nothing else.
    def debian(s: dict[str, Any]) -> None:
        _nix(s).update(sandboxPaths=["/bin/sh=/usr/bin/bash-static"])
        _nix(s).update(sandboxEnforcement="daemon-nix-conf")

    line = _forge(built, "det", debian)
    assert _verify(built, tmp_path, line)[0] == 1
    assert _gate(built, line).skip is False
    policy = tmp_path / "policy" / "provenance.toml"
    policy.parent.mkdir()
    CliRunner().invoke(app, ["trust", "add", "ci", str(built.pub), "--policy", str(policy)])
    allow = '\n[environment]\nallowed-sandbox-paths = ["/bin/sh=/usr/bin/bash-static"]\n'
    policy.write_text(policy.read_text() + allow)
    code, err = _verify(built, tmp_path, line, "--policy", policy)
    assert code == 0, err
    assert _gate(built, line, policy).skip is True
    # ...and a policy that accepts only builds whose options were in force refuses it.
    narrow = allow + 'sandbox-enforcement = ["local-store", "daemon-trusted-user"]\n'
    policy.write_text(policy.read_text().replace(allow, narrow))
    code, err = _verify(built, tmp_path, line, "--policy", policy)
    assert code == 1 and "sandboxEnforcement is 'daemon-nix-conf'" in err


def test_an_own_statement_gate_would_not_believe_is_no_cache_hit(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    # This key's own line for the same drvPath, but without the recorded settings (as an
    # older provenance wrote them): reusing it would hand gate a statement it rejects.
    repo = make_flake(tmp_path / "r")
    key, pub = keypair
    signer = keys.load_signer(key)
    req = attest.BuildRequest(flake_dir=repo, signer=signer, checks=("det",))
    first = attest.build(req, Nix())
    assert first.bundle_path is not None
    (line,) = [
        ln
        for ln in first.bundle_path.read_text().splitlines()
        if json.loads(base64.b64decode(json.loads(ln)["payload"]))["predicateType"].endswith(
            "provenance/v1"
        )
    ]
    stmt = json.loads(base64.b64decode(json.loads(line)["payload"]))
    _nix(stmt).pop("settings")
    old = dsse.sign(json.dumps(stmt, sort_keys=True).encode(), [signer]).to_json()
    git(repo, "notes", "--ref", "refs/notes/provenance", "add", "-f", "-m", old, first.commit)
    again = attest.build(req, Nix())
    assert [c.status for c in again.checks] == ["attested"]  # built anew, not "cached"
    note = git(repo, "notes", "--ref", "refs/notes/provenance", "show", first.commit)
    assert old not in note.splitlines()  # replaced, so verify of this commit passes
    third = attest.build(req, Nix())
    assert [c.status for c in third.checks] == ["cached"]  # the new line is a cache hit
    verify = ["verify", "--flake", str(repo), "--trusted-key", str(pub), "--check", "det"]
    assert CliRunner().invoke(app, verify).exit_code == 0
    # On an ancestor's note the old line binds to the next commit (same drvPath) but
    # proves nothing: history, skipped; the new commit's own statement passes.
    git(repo, "notes", "--ref", "refs/notes/provenance", "add", "-f", "-m", old, first.commit)
    (repo / "README").write_text("docs only\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "readme")
    assert [c.status for c in attest.build(req, Nix()).checks] == ["attested"]
    result = CliRunner().invoke(app, verify)
    assert result.exit_code == 0, result.stderr
    print(result.stderr)
    assert "SKIP 1 line(s) on ancestors' notes" in result.stderr
