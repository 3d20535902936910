"""What `provenance build` refuses or labels, beyond the basics in test_build.py."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.doors.drvfile import read_drv_closure_flags
from provenance.doors.nix import NixConfig, StoreInfo, current_system
from provenance.policy.nixenv import establish
from provenance.policy.nixenv import nondeterministic_outputs as _nondeterministic_outputs
from tests.conftest import git, make_flake, nix

pytestmark = pytest.mark.nix
SYSTEM = current_system()
SANDBOX_ROOT = {"build", "dev", "etc", "nix", "proc", "tmp"}  # `ls /` inside the sandbox
PROBE = '{ mk, tests }: { probe = mk "probe" "busybox ls / > $out" { }; }'


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def statements(bundle: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        json.loads(base64.b64decode(json.loads(ln)["payload"]))
        for ln in Path(bundle).read_text().splitlines()
        if ln.strip()
    ]


def real_nix() -> str:
    found = shutil.which("nix")
    assert found
    return found


def test_results_that_say_failed_are_never_attested(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    # The builder exits 0, but its own summary says a test failed.
    repo = make_flake(
        tmp_path / "r",
        extra_checks='{ mk, tests }: { lying = mk "lying" '
        "\"echo '1 passed, 1 failed'; echo done > $out\" { }; }",
    )
    key, _ = keypair
    code, out, err = cli("build", str(repo), "--key", str(key), "--json")
    assert code == 1 and "lying: FAILED (its test results report 1 passed, 1 failed)" in err
    # A failed run prints the error beside the per-check status (docs/cli.md, `--json`).
    report = json.loads(out)
    assert report["error"]["exitCode"] == 1
    assert {c["name"]: c["status"] for c in report["checks"]}["lying"] == "failed"
    bundle = next((repo / ".provenance").glob("*.intoto.jsonl"))
    checks = {
        s["predicate"]["buildDefinition"]["externalParameters"]["check"]
        for s in statements(str(bundle))
        if s["predicateType"] == "https://slsa.dev/provenance/v1"
    }
    assert checks == {"det", "chain"}
    assert all(s["predicate"].get("result") != "FAILED" for s in statements(str(bundle)))


def test_sandbox_is_on_even_when_nix_conf_says_off(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_flake(tmp_path / "r", extra_checks=PROBE)
    monkeypatch.setenv(
        "NIX_CONFIG", os.environ["NIX_CONFIG"].replace("sandbox = true", "sandbox = false")
    )
    key, _ = keypair
    code, out, err = cli("build", str(repo), "--key", str(key), "--check", "probe", "--json")
    assert code == 0, err
    probe = json.loads(out)["checks"][0]
    # ... and nothing else: our builds force sandbox-paths empty (nixenv.py), so even
    # Debian 13+'s default /bin/sh bind is not there.
    assert set(Path(probe["outputs"]["out"]["path"]).read_text().split()) == SANDBOX_ROOT
    stmt = statements(json.loads(out)["bundle"])[0]
    internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["nix"]["sandboxEnforcement"] == "local-store"
    assert internal["dependencyOutputs"] == "taken-from-store"


def _daemon_wrapper(bin_dir: Path, *, daemon_sandbox: str) -> Path:
    """A nix that reports a daemon store which does not trust us, then defers to real nix.

    Real nix here is single-user (no daemon), so this is the only way to see the path a
    multi-user install takes; everything but `store ping` and the daemon's view of the
    config is the real thing.
    """
    wrapper = bin_dir / "nix"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *"store ping"*|*"store info"*) echo "Store URL: daemon" >&2; exit 0;;\n'
        '  *"sandbox true"*) ;;\n'
        f'  *show-config*|*"config show"*) echo \'{{"sandbox":{{"value":{daemon_sandbox}}},'
        '"sandbox-fallback":{"value":false}}\'; exit 0;;\n'
        "esac\n"
        f'exec {real_nix()} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_untrusted_daemon_without_sandbox_is_refused(
    flake: Path, keypair: tuple[Path, Path], fake_nix: Path
) -> None:
    key, _ = keypair
    wrapper = _daemon_wrapper(fake_nix, daemon_sandbox="false")
    code, _, err = cli("build", str(flake), "--key", str(key), env={"PROVENANCE_NIX": str(wrapper)})
    assert code == 3 and "daemon" in err and "ignores this user's options" in err


def test_untrusted_daemon_with_sandbox_is_labelled_not_proven(
    flake: Path, keypair: tuple[Path, Path], fake_nix: Path
) -> None:
    key, _ = keypair
    wrapper = _daemon_wrapper(fake_nix, daemon_sandbox="true")
    code, out, err = cli(
        "build",
        str(flake),
        "--key",
        str(key),
        "--check",
        "det",
        "--json",
        env={"PROVENANCE_NIX": str(wrapper)},
    )
    assert code == 0, err
    stmt = statements(json.loads(out)["bundle"])[0]
    nixp = stmt["predicate"]["buildDefinition"]["internalParameters"]["nix"]
    assert nixp["sandboxEnforcement"] == "daemon-nix-conf"


def test_trusted_daemon_user_is_labelled() -> None:
    hermetic = NixConfig(True, False, (), SYSTEM)
    trusted = establish(None, hermetic, StoreInfo("daemon", True))  # type: ignore[arg-type]
    assert trusted.enforcement == "daemon-trusted-user"
    assert establish(None, hermetic, StoreInfo("local", None)).enforcement == "local-store"  # type: ignore[arg-type]


def test_output_that_appears_during_the_build_is_rebuild_checked(
    tmp_path: Path, keypair: tuple[Path, Path], fake_nix: Path
) -> None:
    # Another process builds the output unsandboxed between our validity check and our
    # build: nix then builds nothing, and we must not call the output "built".
    repo = make_flake(tmp_path / "r", extra_checks=PROBE)
    wrapper = fake_nix / "nix"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *" build "*--json*) case "$*" in *--rebuild*) ;; *)\n'
        f'  {real_nix()} "$@" --option sandbox false >/dev/null 2>&1;;\n'
        "esac;; esac\n"
        f'exec {real_nix()} "$@"\n'
    )
    wrapper.chmod(0o755)
    key, _ = keypair
    code, _, err = cli(
        "build",
        str(repo),
        "--key",
        str(key),
        "--check",
        "probe",
        env={"PROVENANCE_NIX": str(wrapper)},
    )
    assert code == 3 and "does not reproduce" in err


def test_verify_deps_catches_a_tampered_dependency(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "r")
    head = git(repo, "rev-parse", "HEAD")
    ref = f"git+file://{repo}?rev={head}#checks.{SYSTEM}.chain"
    chain_out = json.loads(nix("build", "--no-link", "--json", ref))[0]["outputs"]["out"]
    drv = nix("eval", "--raw", f"{ref}.drvPath")
    lib_drv = next(
        p for p in nix("path-info", "--derivation", "-r", drv).split() if p.endswith("-lib.drv")
    )
    lib = subprocess.run(
        ["nix-store", "-q", "--outputs", lib_drv], capture_output=True, text=True, check=True
    ).stdout.strip()
    nix("store", "delete", chain_out)
    target = Path(lib) / "lib.txt"
    Path(lib).chmod(0o755)
    target.chmod(0o644)
    target.write_text("TAMPERED\n")
    key, _ = keypair
    try:
        # Default: dependencies are taken from the store, and the statement says so.
        code, out, err = cli("build", str(repo), "--key", str(key), "--check", "chain", "--json")
        assert code == 0, err
        stmt = statements(json.loads(out)["bundle"])[0]
        internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
        assert internal["dependencyOutputs"] == "taken-from-store"
        # --verify-deps proves the contents first, and refuses.
        code, _, err = cli(
            "build", str(repo), "--key", str(key), "--check", "chain", "--force", "--verify-deps"
        )
        assert code == 3 and "does not match its recorded hash" in err
    finally:
        target.write_text("library\n")


def test_verify_deps_labels_a_clean_closure(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    code, out, err = cli(
        "build", str(flake), "--key", str(key), "--check", "chain", "--verify-deps", "--json"
    )
    assert code == 0, err
    stmt = statements(json.loads(out)["bundle"])[0]
    internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["dependencyOutputs"] == "verified-local-or-signed"


def test_only_nix_errors_count_as_nondeterminism() -> None:
    log_only = "det-check> error: may not be deterministic: output '/nix/store/x' differs\n"
    assert _nondeterministic_outputs(log_only) is None
    real = (
        "checking outputs of '/nix/store/a-det.drv'...\n"
        "error: derivation '/nix/store/a-det.drv' may not be deterministic: "
        "output '/nix/store/b-det' differs\n"
    )
    assert _nondeterministic_outputs(real) == ["/nix/store/b-det"]


def test_untrusted_daemon_check_ignores_the_users_own_nix_conf(
    flake: Path, keypair: tuple[Path, Path], fake_nix: Path
) -> None:
    # The system nix.conf (what the daemon reads) has the sandbox off; this user's own
    # config says on. Reading "the daemon's config" must not see the user's files.
    wrapper = fake_nix / "nix"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *"store ping"*|*"store info"*) echo "Store URL: daemon" >&2; exit 0;;\n'
        '  *"sandbox true"*) ;;\n'
        '  *show-config*|*"config show"*)\n'
        '    if [ -n "${NIX_USER_CONF_FILES+set}" ] && [ -z "$NIX_USER_CONF_FILES" ]; then v=false; else v=true; fi\n'
        '    echo \'{"sandbox":{"value":\'$v\'},"sandbox-fallback":{"value":false}}\'; exit 0;;\n'
        "esac\n"
        f'exec {real_nix()} "$@"\n'
    )
    wrapper.chmod(0o755)
    key, _ = keypair
    code, _, err = cli("build", str(flake), "--key", str(key), env={"PROVENANCE_NIX": str(wrapper)})
    assert code == 3 and "ignores this user's options" in err


def test_verify_deps_skips_dependencies_no_longer_in_the_store(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    code, out, err = cli("build", str(flake), "--key", str(key), "--check", "chain", "--json")
    assert code == 0, err
    drv = json.loads(out)["checks"][0]["drvPath"]
    lib_drv = next(
        p for p in nix("path-info", "--derivation", "-r", drv).split() if p.endswith("-lib.drv")
    )
    lib_out = subprocess.run(
        ["nix-store", "-q", "--outputs", lib_drv], capture_output=True, text=True, check=True
    ).stdout.strip()
    nix("store", "delete", lib_out)  # a build-only dependency, collected since
    code, out, err = cli(
        "build",
        str(flake),
        "--key",
        str(key),
        "--check",
        "chain",
        "--force",
        "--verify-deps",
        "--json",
    )
    assert code == 0, err
    stmt = statements(json.loads(out)["bundle"])[0]
    assert stmt["predicate"]["buildDefinition"]["internalParameters"]["dependencyOutputs"] == (
        "verified-local-or-signed"
    )


def test_drv_closure_walk_matches_nix(flake: Path) -> None:
    head = git(flake, "rev-parse", "HEAD")
    drv = nix("eval", "--raw", f"git+file://{flake}?rev={head}#checks.{SYSTEM}.chain.drvPath")
    closure = subprocess.run(
        ["nix-store", "-qR", drv], capture_output=True, text=True, check=True
    ).stdout.split()
    walked = read_drv_closure_flags([drv])
    assert walked is not None
    assert set(walked) == {p for p in closure if p.endswith(".drv")}
    lib = next(p for p in walked if p.endswith("-lib.drv"))
    assert walked[lib].outputs and all(o.startswith("/nix/store/") for o in walked[lib].outputs)
    assert read_drv_closure_flags(["/nix/store/" + "0" * 32 + "-missing.drv"]) is None
