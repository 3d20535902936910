"""Inside `nix develop`, as agents run it: build, verify and gate sign what they sign outside.

The built-in example and the fixture flake each have a dev shell made from their static
busybox (no nixpkgs: dev/dev-env.sh). `nix develop` changes the environment provenance
runs in: PATH (the shell's in front), TMPDIR/TMP/TEMP/TEMPDIR and NIX_BUILD_TOP (a fresh
/tmp/nix-shell.*), IN_NIX_SHELL, out/outputs/name/builder/system, NIX_STORE and whatever
else the derivation sets. The tests first show that the shell really set those, then run
`provenance build`, `verify --rebuild` and `gate` inside it and outside, and require the
signed statements, the signed verification summaries and the JSON reports to be the same
except for clocks, invocation ids and the paths each run was told to write to.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provenance.example import materialise
from provenance.formats import keys
from tests.conftest import make_flake, run

pytestmark = pytest.mark.nix
# What two honest runs of the same command differ in (docs/attestation-format.md).
VOLATILE = {"startedOn", "finishedOn", "invocationId", "timeVerified"}
FRESH_STORE = re.compile(r"/\S*?provenance-verify-[A-Za-z0-9_]+")


@pytest.fixture(params=["example", "fixture"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "fixture":
        return make_flake(tmp_path / "repo")
    dest = materialise(tmp_path / "repo")
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "commit", "-q", "-m", "example"], cwd=dest)
    return dest


def _env() -> dict[str, str]:
    # `provenance` by name, as an agent types it: the one installed next to this python.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path}


def _run(repo: Path, cmd: list[str], *, inside: bool) -> subprocess.CompletedProcess[str]:
    if inside:
        cmd = ["nix", "--extra-experimental-features", "nix-command flakes", "develop",
               str(repo), "-c", *cmd]  # fmt: skip
    done = subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True, check=False)
    print(f"{cmd}: exit {done.returncode}\n{done.stderr}")  # shown by pytest on failure
    return done


def provenance(repo: Path, *args: str | Path, inside: bool) -> Any:
    done = _run(repo, ["provenance", *map(str, args)], inside=inside)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def payloads(bundle: Path) -> list[dict[str, Any]]:
    lines = [ln for ln in bundle.read_text().splitlines() if ln.strip()]
    return [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in lines]


def steady(value: Any, *written: Path) -> Any:
    """`value` without what two honest runs differ in: clocks, ids, our own output paths
    and the fresh store verify made (under whichever TMPDIR it had)."""
    if isinstance(value, dict):
        return {k: steady(v, *written) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v, *written) for v in value]
    if isinstance(value, str):
        for i, path in enumerate(written):
            value = value.replace(str(path), f"<written {i}>")
        return FRESH_STORE.sub("<fresh store>", value)
    return value


def test_the_dev_shell_sets_what_nix_develop_sets(repo: Path) -> None:
    show = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
    outer = json.loads(_run(repo, show, inside=False).stdout)
    done = _run(repo, show, inside=True)
    assert done.returncode == 0, done.stderr
    shell = json.loads(done.stdout)
    assert shell["IN_NIX_SHELL"] == "impure"
    assert re.fullmatch(r"/nix/store/[a-z0-9]{32}-bootstrap-tools/bin", shell["PATH"].split(":")[0])
    assert shell["PATH"].endswith(outer["PATH"])  # the shell's PATH in front of the user's
    assert shell["NIX_BUILD_TOP"] == shell["TMPDIR"] != outer.get("TMPDIR")
    assert Path(shell["TMPDIR"]).name.startswith("nix-shell")
    assert shell["out"] == str(repo / "outputs" / "out") and shell["NIX_STORE"] == "/nix/store"
    assert re.search(r"-dev-shell(-env)?$", shell["name"])  # 2.26+ name it after the -env drv


def test_build_verify_and_gate_in_the_shell_sign_what_they_sign_outside(
    repo: Path, tmp_path: Path
) -> None:
    key, pub, _ = keys.generate(tmp_path / "keys")
    reviewer, _, _ = keys.generate(tmp_path / "reviewer")
    bundles = {w: tmp_path / f"{w}.intoto.jsonl" for w in ("outside", "inside")}
    vsas = {w: tmp_path / f"{w}.vsa.jsonl" for w in ("outside", "inside")}
    # Once first, so that both runs below find the outputs valid and rebuild them to
    # compare (a first build would record `built`, a later one `rebuilt-and-compared`).
    provenance(
        repo, "build", "--key", key, "--json", "--no-note", "-o", tmp_path / "warm", inside=False
    )
    built, verified, gated = {}, {}, {}
    for where, inside in (("outside", False), ("inside", True)):
        built[where] = provenance(
            repo, "build", "--key", key, "--json", "--force", "-o", bundles[where], inside=inside
        )
        verified[where] = provenance(
            repo, "verify", "--flake", repo, "--trusted-key", pub, "--rebuild",
            "--sign-with", reviewer, "-o", vsas[where], "--no-note", "--json",
            bundles["outside"], inside=inside,
        )  # fmt: skip
        gated[where] = provenance(
            repo, "gate", repo, "--trusted-key", pub, "--no-fetch", "--json", inside=inside
        )
    statements = {w: payloads(b) for w, b in bundles.items()}
    assert len(statements["outside"]) >= 2  # provenance and test results, at least
    assert steady(statements["inside"]) == steady(statements["outside"])
    assert steady(built["inside"], bundles["inside"]) == steady(
        built["outside"], bundles["outside"]
    )
    assert {c["outputCheck"] for c in built["inside"]["checks"]} == {"rebuilt-and-compared"}
    summaries = {w: payloads(v) for w, v in vsas.items()}
    for vsa in summaries["outside"]:  # one per check
        assert vsa["predicate"]["verificationResult"] == "PASSED"
        assert "PROVENANCE_REPRODUCED" in vsa["predicate"]["verifiedLevels"]
    assert steady(summaries["inside"]) == steady(summaries["outside"])
    assert steady(verified["inside"], vsas["inside"]) == steady(
        verified["outside"], vsas["outside"]
    )
    assert gated["inside"] == gated["outside"] and gated["outside"]["skip"] is True
    # The shell's TMPDIR was the one used: verify's fresh store was made under it.
    details = json.dumps(verified["inside"])
    assert "/nix-shell" in "".join(FRESH_STORE.findall(details)), details
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""  # nothing left behind
