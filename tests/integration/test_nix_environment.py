"""Hostile Nix settings (nixenv.py, realise.py): each must end in a refusal, a failure or a
true label, never in a signed false claim.

Every check here fails when honestly built; each hostile setting would make it "pass"
(a real hook program Nix really starts, a real signed file:// binary cache, a real
hand-registered store path). Each test first shows, with plain `nix build`, that the
attack works on this Nix (so the test would fail without the fix), then runs
`provenance build` / `verify` under the same setting.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.doors.nix import current_system
from provenance.formats import keys
from tests.conftest import drv_outputs, git, make_flake, nix, run

pytestmark = pytest.mark.nix
SYSTEM = current_system()
SLSA = "https://slsa.dev/provenance/v1"


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    print(f"exit {result.exit_code}\n{result.stderr}")  # shown by pytest on failure
    return result.exit_code, result.stdout, result.stderr


def statements(repo: Path) -> list[dict[str, Any]]:
    found = []
    for bundle in (repo / ".provenance").glob("*.intoto.jsonl"):
        for ln in bundle.read_text().splitlines():
            if ln.strip():
                found.append(json.loads(base64.b64decode(json.loads(ln)["payload"])))
    return found


def attested_checks(repo: Path) -> set[str]:
    return {
        s["predicate"]["buildDefinition"]["externalParameters"]["check"]
        for s in statements(repo)
        if s["predicateType"] == SLSA
    }


def hostile(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    monkeypatch.setenv("NIX_CONFIG", "\n".join([os.environ["NIX_CONFIG"], *lines]))


def ref(repo: Path, check: str) -> str:
    return f"git+file://{repo}?rev={git(repo, 'rev-parse', 'HEAD')}#checks.{SYSTEM}.{check}"


def plain_build(repo: Path, check: str, *extra: str) -> str:
    """`nix build` as a user would run it, under the same (hostile) NIX_CONFIG."""
    base = ["nix", "--extra-experimental-features", "nix-command flakes", *extra]
    done = run([*base, "build", "--no-link", "--json", "-L", ref(repo, check)])
    return str(json.loads(done.stdout)[0]["outputs"]["out"])


def program(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _register(path: str, deriver: str, *, again: bool = False) -> None:
    """Register a hand-made store path as valid, with the hash of its (fake) contents."""
    dump = subprocess.run(["nix-store", "--dump", path], capture_output=True, check=True).stdout
    info = f"{path}\nsha256:{hashlib.sha256(dump).hexdigest()}\n{len(dump)}\n{deriver}\n0\n"
    flags = ["--register-validity", "--hash-given", *(["--reregister"] if again else [])]
    subprocess.run(["nix-store", *flags], input=info.encode(), check=True)


# The helpers the hook programs share: Nix's wire format, and registering fake outputs.
_HOOK_LIB = """
import hashlib, json, os, struct, subprocess, sys
def register(path, deriver, again=False):
    dump = subprocess.run(["nix-store", "--dump", path], capture_output=True, check=True).stdout
    info = f"{path}\\nsha256:{hashlib.sha256(dump).hexdigest()}\\n{len(dump)}\\n{deriver}\\n0\\n"
    flags = ["--register-validity", "--hash-given"] + (["--reregister"] if again else [])
    subprocess.run(["nix-store"] + flags, input=info.encode(), check=True)
def outputs_of(drv):
    done = subprocess.run(["nix-store", "-q", "--outputs", drv], capture_output=True, text=True)
    return done.stdout.split()
"""

# Nix's build-hook protocol (2.8): settings, then "try" + can-build + system + drv +
# features; the hook answers "# accept" and a machine name on stderr, reads the inputs
# and wanted outputs, and must leave those outputs valid. This one builds nothing.
FABRICATING_HOOK = (
    _HOOK_LIB
    + """
inp = sys.stdin.buffer
def num():
    return struct.unpack("<Q", inp.read(8))[0]
def text():
    n = num(); data = inp.read(n); inp.read((8 - n % 8) % 8); return data.decode()
while num():
    text(); text()
assert text() == "try"
num(); text(); drv = text(); [text() for _ in range(num())]
sys.stderr.write("# accept\\nevil-builder\\n"); sys.stderr.flush()
[text() for _ in range(num())]
[text() for _ in range(num())]
for path in outputs_of(drv):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "result.txt"), "w") as f:
        f.write("42 passed, 0 failed\\n")
    register(path, drv)
"""
)

# A post-build hook (it runs outside the sandbox, as the daemon's user): rewrites the
# results and re-registers the path with the new hash. 2.8 leaves OUT_PATHS empty.
REWRITING_HOOK = (
    _HOOK_LIB
    + """
for path in os.environ.get("OUT_PATHS", "").split() or outputs_of(os.environ["DRV_PATH"]):
    os.chmod(path, 0o755)
    f = os.path.join(path, "result.txt")
    if os.path.exists(f):
        os.chmod(f, 0o644)
    with open(f, "w") as fh:
        fh.write("99 passed, 0 failed\\n")
    register(path, os.environ["DRV_PATH"], again=True)
"""
)


# -- 1. build-hook ------------------------------------------------------------------------


def test_a_build_hook_that_fabricates_outputs_is_never_started(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "\"echo '0 passed, 1 failed'; exit 1\""
    repo = make_flake(
        tmp_path / "r",
        extra_checks="{ mk, tests }: {\n"
        f'  hooked = mk "hooked" {failing} {{ }};\n'
        f'  hooked-twin = mk "hooked-twin" {failing} {{ }};\n'
        "}\n",
    )
    hook = program(tmp_path / "fabricate", FABRICATING_HOOK)
    hostile(monkeypatch, f"build-hook = {hook}")
    # Plain nix starts the hook although `builders = ""`, and takes its outputs.
    faked = plain_build(repo, "hooked-twin", "--option", "builders", "")
    assert Path(faked, "result.txt").read_text() == "42 passed, 0 failed\n"
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "hooked")
    assert code == 1 and "hooked: FAILED" in err  # really built here: it fails
    assert "evil-builder" not in err
    assert "hooked" not in attested_checks(repo)


def test_a_remote_build_line_is_not_a_local_build() -> None:
    from provenance.policy.nixenv import built_here, saw_build  # noqa: PLC0415

    drv = "/nix/store/" + "a" * 32 + "-x.drv"
    assert saw_build(f"building '{drv}'...", drv)
    assert saw_build(f'building "{drv}"...', drv)  # 2.34's quotes
    assert not saw_build(f"building '{drv}' on 'ssh://builder'...", drv)
    assert not saw_build(f"x> building '{drv}'...", drv)  # a builder's own log line
    assert not saw_build(f"checking outputs of '{drv}'...", drv)  # not a first build
    assert saw_build(f"checking outputs of '{drv}'...", drv, rebuild=True)
    assert built_here(f"building '{drv}' (round 1/2)...") == ("building", drv)


# -- 2. pre-build-hook ---------------------------------------------------------------------


HOST_READER = (
    '{ mk, tests }: {\n  host = mk "host" "busybox mkdir $out; '
    'busybox cat /hostdata/result.txt > $out/result.txt" { };\n'
    '  host-twin = mk "host-twin" "busybox mkdir $out; '
    'busybox cat /hostdata/result.txt > $out/result.txt" { };\n}\n'
)


def _hostdata(tmp_path: Path) -> Path:
    data = tmp_path / "hostdata"
    data.mkdir()
    (data / "result.txt").write_text("7 passed, 0 failed\n")
    return data


def test_a_pre_build_hook_cannot_mount_a_host_directory(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _hostdata(tmp_path)
    repo = make_flake(tmp_path / "r", extra_checks=HOST_READER)
    hook = tmp_path / "pre-build-hook"
    hook.write_text(f"#!/bin/sh\necho extra-sandbox-paths\necho /hostdata={data}\necho\n")
    hook.chmod(0o755)
    hostile(monkeypatch, f"pre-build-hook = {hook}")
    assert Path(plain_build(repo, "host-twin"), "result.txt").read_text() == "7 passed, 0 failed\n"
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "host")
    assert code == 1 and "host: FAILED" in err
    assert "host" not in attested_checks(repo)


# -- 3. post-build-hook --------------------------------------------------------------------


def test_a_post_build_hook_cannot_rewrite_results(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "\"busybox mkdir $out; echo '1 passed, 3 failed' > $out/result.txt\""
    repo = make_flake(
        tmp_path / "r",
        extra_checks="{ mk, tests }: {\n"
        # Declared as the check's report (test-results.md): the file a hook would rewrite.
        f'  rewritten = mk "rewritten" {failing} {{ testReport = "result.txt"; }};\n'
        f'  rewritten-twin = mk "rewritten-twin" {failing} {{ testReport = "result.txt"; }};\n'
        "}\n",
    )
    hook = program(tmp_path / "post-build-hook", REWRITING_HOOK)
    hostile(monkeypatch, f"post-build-hook = {hook}")
    twin = plain_build(repo, "rewritten-twin")
    assert Path(twin, "result.txt").read_text() == "99 passed, 0 failed\n"
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "rewritten")
    assert code == 1 and "rewritten: FAILED (its test results report 1 passed, 3 failed)" in err
    # A team's upload hook does not stop silently: the build says so, and what to do.
    assert f"post-build-hook = '{hook}' is switched off" in err and "after signing" in err
    assert "can rewrite the outputs" in err
    assert "rewritten" not in attested_checks(repo)


# -- 4. extra-sandbox-paths ----------------------------------------------------------------


def test_extra_sandbox_paths_in_nix_config_are_cleared(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _hostdata(tmp_path)
    repo = make_flake(tmp_path / "r", extra_checks=HOST_READER)
    hostile(monkeypatch, f"extra-sandbox-paths = /hostdata={data}")
    assert Path(plain_build(repo, "host-twin"), "result.txt").read_text() == "7 passed, 0 failed\n"
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "host", "--check", "det")
    assert code == 1 and "host: FAILED" in err
    assert attested_checks(repo) == {"det"}
    (det,) = (s for s in statements(repo) if s["predicateType"] == SLSA)
    nixp = det["predicate"]["buildDefinition"]["internalParameters"]["nix"]
    assert nixp["sandboxPaths"] == []  # what the build really had: the statement is true
    assert nixp["settings"]["pre-build-hook"] == "" and nixp["settings"]["substitute"] is False


# -- 5. a signed binary cache holding the attested output ---------------------------------

STAMPED = """{ mk, tests }: {
  stamped = mk "stamped" ''
    busybox mkdir $out
    busybox cat $lib/lib.txt > $out/lib.txt
    { busybox date +%s; echo $RANDOM $RANDOM; } > $out/stamp
  '' { lib = mk "stamped-lib" "busybox mkdir $out; echo lib > $out/lib.txt" { }; };
}
"""


def _signed_cache(tmp_path: Path, paths: list[str]) -> list[str]:
    """A file:// binary cache holding `paths`, signed; the settings that make nix use it."""
    secret, public = tmp_path / "cache.sec", tmp_path / "cache.pub"
    secret.write_text(nix("key", "generate-secret", "--key-name", "team-cache-1"))
    public.write_text(
        run(["nix", "key", "convert-secret-to-public"], input=secret.read_text()).stdout
    )
    cache = f"file://{tmp_path / 'cache'}?compression=none"
    nix("store", "sign", "--key-file", str(secret), *paths)
    nix("copy", "--to", cache, *paths)
    return [f"substituters = {cache}", f"trusted-public-keys = {public.read_text().strip()}"]


@pytest.mark.parametrize("where", ["fresh", "in-place"])
def test_verify_rebuild_never_downloads_the_derivation_under_verification(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    repo = make_flake(tmp_path / "r", extra_checks=STAMPED)
    key, pub = keypair
    code, out, err = cli("build", repo, "--key", key, "--check", "stamped", "--json")
    assert code == 0, err
    (check,) = json.loads(out)["checks"]
    path, digest = check["outputs"]["out"]["path"], check["outputs"]["out"]["sha256"]
    lib = nix("eval", "--raw", ref(repo, "stamped") + ".lib.outPath")  # a dependency, cached too
    hostile(monkeypatch, *_signed_cache(tmp_path, [path, lib]))
    # The cache works: a plain build in a fresh store downloads the very attested bytes.
    probe = tmp_path / "probe"
    nix("copy", "--derivation", "--to", str(probe), check["drvPath"])
    run(["nix", "build", "--store", str(probe), "--no-link", drv_outputs(check["drvPath"])])
    assert nix("hash", "path", "--base16", str(probe / path.lstrip("/"))) == digest
    args: list[str | Path] = ["--rebuild", "--store", tmp_path / "fresh"]
    if where == "in-place":
        nix("store", "delete", path)
        args = ["--rebuild", "--in-place"]
    reviewer, _, _ = keys.generate(tmp_path / "reviewer")
    vsa = tmp_path / "vsa.jsonl"
    code, out, err = cli(
        "verify", "--flake", repo, "--trusted-key", pub, "--check", "stamped", *args,
        "--sign-with", reviewer, "--output", vsa, "--no-note", "--json",
    )  # fmt: skip
    assert code == 1, "a download was taken for a rebuild"
    assert "is not the attested" in err or "does not reproduce" in err
    (summary,) = [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in vsa.open()]
    assert summary["predicate"]["verificationResult"] == "FAILED"
    assert "PROVENANCE_REPRODUCED" not in summary["predicate"]["verifiedLevels"]
    if where == "in-place":  # really built here: the local copy is not the cache's
        assert nix("hash", "path", "--base16", path) != digest


# -- 6. a partly valid multi-output check --------------------------------------------------

TWO_OUTPUTS = """{ mk, tests }: {
  two = mk "two" ''
    busybox mkdir $out $res
    echo built > $out/out.txt
    echo '1 passed, 3 failed' > $res/result.txt
  '' { outputs = [ "out" "res" ]; };
  pair = mk "pair" "busybox mkdir $out $res; echo a > $out/a; echo b > $res/b"
    { outputs = [ "out" "res" ]; };
}
"""


def test_a_partly_valid_multi_output_check_is_rebuilt_whole(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "r", extra_checks=TWO_OUTPUTS)
    drv = nix("eval", "--raw", ref(repo, "two") + ".drvPath")
    res = nix("eval", "--raw", ref(repo, "two") + ".res.outPath")
    Path(res).mkdir()
    Path(res, "result.txt").write_text("7 passed, 0 failed\n")
    _register(res, drv)
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "two")
    assert code == 3 and "does not reproduce" in err
    assert "two" not in attested_checks(repo)


def test_subjects_are_every_evaluated_output(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    repo = make_flake(tmp_path / "r", extra_checks=TWO_OUTPUTS)
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "pair")
    assert code == 0, err
    (stmt,) = (s for s in statements(repo) if s["predicateType"] == SLSA)
    subjects = {s["annotations"]["nixOutput"]: s["name"] for s in stmt["subject"]}
    evaluated = {
        o: nix("eval", "--raw", f"{ref(repo, 'pair')}.{o}.outPath") for o in ("out", "res")
    }
    assert subjects == evaluated


# -- 7. a fixed-output check ------------------------------------------------------------


def test_a_fixed_output_check_is_refused(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    digest = hashlib.sha256(b"5 passed, 0 failed\n").hexdigest()
    fod = (
        '{ mk, tests }: { fod = mk "fod" "echo \'5 passed, 0 failed\' > $out" '
        f'{{ outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{digest}"; }}; }}\n'
    )
    repo = make_flake(tmp_path / "r", extra_checks=fod)
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "fod")
    assert code == 3 and "check fod is a fixed-output derivation" in err
    assert not (repo / ".provenance").exists() or not attested_checks(repo)


# -- 8. --verify-deps and a hand-placed dependency -------------------------------------------


def test_verify_deps_refuses_a_hand_placed_dependency(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "r")
    lib_drv = nix("eval", "--raw", ref(repo, "chain") + ".lib.drvPath")
    lib = nix("eval", "--raw", ref(repo, "chain") + ".lib.outPath")
    Path(lib).mkdir()
    Path(lib, "lib.txt").write_text("FAKE\n")
    _register(lib, lib_drv)
    assert subprocess.run(["nix-store", "--verify-path", lib], check=False).returncode == 0
    key, _ = keypair
    code, _, err = cli("build", repo, "--key", key, "--check", "chain", "--verify-deps")
    assert code == 3 and "neither built by this store nor signed by a trusted key" in err
    # Without --verify-deps the statement says what it is: taken from the store as it is.
    code, _, err = cli("build", repo, "--key", key, "--check", "chain")
    assert code == 0, err
    (stmt,) = (s for s in statements(repo) if s["predicateType"] == SLSA)
    internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["dependencyOutputs"] == "taken-from-store"


def test_verify_in_place_with_one_output_missing_builds_it_then_compares_all(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "r", extra_checks=TWO_OUTPUTS)
    key, pub = keypair
    code, out, err = cli("build", repo, "--key", key, "--check", "pair", "--json")
    assert code == 0, err
    (check,) = json.loads(out)["checks"]
    nix("store", "delete", check["outputs"]["res"]["path"])
    code, _, err = cli(
        "verify", "--flake", repo, "--trusted-key", pub, "--check", "pair", "--rebuild",
        "--in-place",
    )  # fmt: skip
    assert code == 0, err
    assert err.count("nix --rebuild matched the store") == 2  # both outputs compared
