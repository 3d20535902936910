"""Only derivations this evaluation instantiates are checks (issue 11, part 1).

The attack: a trusted key attested `det` on commit P. Commit C breaks the tests and
replaces `det` by something that merely *names* P's drvPath: a plain attribute set, the
same with the drvPath string given derivation context by `builtins.appendContext`, or a
real (broken) derivation with its drvPath overridden. Before the fix `build`
attested it, `verify` said PASSED and `gate` said skip=true, reusing P's attestation.

The forgery lives in a JSON file the flake reads, so C changes no file that defines the
checks (flake.nix, *.nix): what is tested here is the evaluation check alone, not the
definition comparison that would also catch a forgery written into a .nix file.
Real nix, real git.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.attest import pipeline as attest
from provenance.ci.gate import GateRequest, gate
from provenance.cli import app
from provenance.doors.nix import Nix, current_system
from provenance.errors import NotADerivationError
from provenance.formats import keys
from provenance.policy.trust import from_key_files
from tests.conftest import NIX_CONFIG, git, make_flake, nix

pytestmark = pytest.mark.nix

# `det` as the flake defines it, unless forge.json says to replace it. The JSON file is
# data, not a definition of the checks, so changing it leaves the definition unchanged.
FORGER = """{ mk, tests }:
let
  f = builtins.fromJSON (builtins.readFile ./forge.json);
  real = mk "det-check" "echo broken; exit 1" { src = tests; };
  named = {
    type = "derivation";
    name = "det-check";
    outputName = "out";
    outputs = [ "out" ];
    outPath = f.outPath;
    out = { outPath = f.outPath; };
  };
  forged = {
    plain = named // { drvPath = f.drvPath; };
    context = named // {
      drvPath = builtins.appendContext f.drvPath { ${f.drvPath} = { allOutputs = true; }; };
      outPath = builtins.appendContext f.outPath { ${f.drvPath} = { outputs = [ "out" ]; }; };
    };
    override = real // { drvPath = f.drvPath; };
  };
in if f ? mode then { det = forged.${f.mode}; } else { }
"""

MODES = ["plain", "context", "override"]
_TEST_ENV = {
    "NIX_CONFIG": NIX_CONFIG,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    **{f"GIT_{who}_NAME": "tester" for who in ("AUTHOR", "COMMITTER")},
    **{f"GIT_{who}_EMAIL": "t@example.invalid" for who in ("AUTHOR", "COMMITTER")},
}


@dataclass(frozen=True)
class Forged:
    repo: Path
    mode: str
    parent: str  # P, honestly attested
    drv: str  # P's det drvPath, which C's forged det names
    key: Path
    pub: Path

    @property
    def why(self) -> str:
        return (
            "its own attributes derive" if self.mode == "override" else "not made by `derivation`"
        )


@pytest.fixture(scope="module", params=MODES)
def forged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Forged]:
    """P: attested honestly. C: the tests broken, `det` forged to name P's drvPath."""
    base = tmp_path_factory.mktemp(f"forged-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _TEST_ENV.items():
            mp.setenv(k, v)
        repo = make_flake(base / "repo", extra_checks=FORGER, commit=False)
        (repo / "forge.json").write_text("{}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "fixture")
        key, pub, _ = keys.generate(base / "keys")
        signer = keys.load_signer(key)
        report = attest.build(attest.BuildRequest(flake_dir=repo, signer=signer), Nix())
        det = next(c for c in report.checks if c.name == "det")
        (repo / "tests" / "test_det.sh").write_text("echo '0 passed, 1 failed'; exit 1\n")
        forge = {
            "mode": request.param,
            "drvPath": det.drv_path,
            "outPath": det.outputs["out"]["path"],
        }
        (repo / "forge.json").write_text(json.dumps(forge) + "\n")
        git(repo, "commit", "-qam", "break the tests, keep the proof")
        yield Forged(repo, request.param, report.commit, det.drv_path, key, pub)


def test_build_refuses_a_forged_check(forged: Forged) -> None:
    """Refused (exit 3), nothing attested, no note on the forged commit."""
    signer = keys.load_signer(forged.key)
    with pytest.raises(NotADerivationError) as e:
        attest.build(attest.BuildRequest(flake_dir=forged.repo, signer=signer), Nix())
    assert forged.why in e.value.message
    assert forged.drv in e.value.message
    done = subprocess.run(
        ["git", "-C", str(forged.repo), "notes", "--ref", "provenance", "show", "HEAD"],
        capture_output=True,
        check=False,
    )
    assert done.returncode != 0  # no note on C


def test_verify_refuses_a_forged_check(forged: Forged) -> None:
    """Notes mode: P's statement on the ancestor would bind by drvPath; refused, exit 3."""
    args = ["verify", "--flake", str(forged.repo), "--trusted-key", str(forged.pub)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.stderr
    assert forged.why in result.stderr
    assert "verified:" not in result.stderr


def test_gate_runs_on_a_forged_check(forged: Forged, tmp_path: Path) -> None:
    """The CLI as CI runs it: skip=false, with the reason; nothing was reused."""
    out = tmp_path / "gh-output"
    out.write_text("")
    cmd = [sys.executable, "-m", "provenance", "gate", str(forged.repo), "--no-fetch"]
    done = subprocess.run(
        [*cmd, "--trusted-key", str(forged.pub)],
        capture_output=True,
        text=True,
        env={**os.environ, "GITHUB_OUTPUT": str(out)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pairs = dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)
    assert pairs["skip"] == "false"
    assert forged.why in pairs["reason"]
    assert forged.parent not in pairs["reason"]
    # The API says the same.
    policy = from_key_files([forged.pub])
    report = gate(GateRequest(flake_dir=forged.repo, policy=policy, fetch=False), Nix())
    assert not report.skip and forged.why in report.reason


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('"/nix/store/00000000000000000000000000000000-x.drv"', "is a string, not a derivation"),
        ("{ a = 1; }", 'is an attribute set without type = "derivation"'),
        ("(x: x)", "is a lambda, not a derivation"),
    ],
)
def test_a_check_that_is_no_derivation_is_refused(tmp_path: Path, value: str, said: str) -> None:
    extra = f"{{ mk, tests }}: {{ odd = {value}; }}\n"
    repo = make_flake(tmp_path / "repo", extra_checks=extra)
    key, _, _ = keys.generate(tmp_path / "keys")
    result = CliRunner().invoke(app, ["build", str(repo), "--key", str(key)])
    assert result.exit_code == 3, result.stderr
    assert f"checks.{current_system()}.odd {said}" in result.stderr
    assert result.stderr.count("\n") <= 2  # one line (and its hint), no traceback
    # Selecting only genuine checks is fine: the odd one is never looked at.
    ok = CliRunner().invoke(app, ["build", str(repo), "--key", str(key), "--check", "det"])
    assert ok.exit_code == 0, ok.stderr


def test_genuine_derivations_of_every_shape_pass(tmp_path: Path) -> None:
    """A multi-output derivation, one of its other outputs, and a copy of a derivation's
    attributes re-derived here: all are instantiated by this evaluation, so all count."""
    extra = """{ mk, tests }:
let two = mk "two-check" "echo a > $out; echo b > $dev" { outputs = [ "out" "dev" ]; };
in {
  two = two;
  twodev = two.dev;
  copied = { type = "derivation"; inherit (two) drvAttrs drvPath outPath outputName; };
}
"""
    repo = make_flake(tmp_path / "repo", extra_checks=extra)
    commit = git(repo, "rev-parse", "HEAD")
    checks = Nix().eval_checks(f"git+file://{repo}?rev={commit}", current_system(), None)
    assert checks["two"].drv_path == checks["twodev"].drv_path == checks["copied"].drv_path
    assert set(checks["twodev"].outputs) == {"out", "dev"}
    assert checks["two"].outputs == checks["copied"].outputs


def test_string_context_is_forgeable_so_it_is_not_what_decides(tmp_path: Path) -> None:
    """Why the check re-derives rather than inspects context: appendContext gives a plain
    string exactly the context a real derivation's drvPath has (`=`-kind, allOutputs)."""
    extra = """{ mk, tests }:
let real = mk "det-check" "echo ok > $out" { };
    p = builtins.unsafeDiscardStringContext real.drvPath;
in {
  forged = { type = "derivation"; drvPath = builtins.appendContext p { ${p} = { allOutputs = true; }; };
             outPath = real.outPath; outputName = "out"; };
}
"""
    repo = make_flake(tmp_path / "repo", extra_checks=extra)
    system = current_system()
    apply = (
        "cs: let c = cs.${s}; in { real = builtins.getContext c.det.drvPath; "
        "forged = builtins.getContext c.forged.drvPath; }"
    ).replace("${s}", f'"{system}"')
    got = json.loads(nix("eval", "--json", f"{repo}#checks", "--apply", apply))
    ((real_drv, real_ctx),) = got["real"].items()
    ((forged_drv, forged_ctx),) = got["forged"].items()
    assert real_ctx == forged_ctx == {"allOutputs": True}  # indistinguishable by context
    assert real_drv != forged_drv and forged_drv.endswith("-det-check.drv")
    with pytest.raises(NotADerivationError, match="not made by `derivation`"):
        Nix().eval_checks(f"git+file://{repo}", system, ["forged"])
