"""`provenance build` end to end against real nix and real git."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as ItaStatement
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey
from typer.testing import CliRunner

from provenance.cli import app
from provenance.doors.nix import current_system
from provenance.formats import dsse, keys
from provenance.formats.hashing import sha256_hex
from provenance.formats.keys import load_public_key
from tests.conftest import git, make_flake, nix

pytestmark = pytest.mark.nix
SLSA = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
SYSTEM = current_system()


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _ptype(line: str) -> str:
    return str(json.loads(base64.b64decode(json.loads(line)["payload"]))["predicateType"])


def payloads(bundle: Path) -> list[dict]:  # type: ignore[type-arg]
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in bundle.read_text().splitlines()
        if line.strip()
    ]


def test_build_attests_every_check_and_cross_checks(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    code, out, err = cli("build", str(flake), "--key", str(key), "--json")
    assert code == 0, err
    report = json.loads(out)
    commit = git(flake, "rev-parse", "HEAD")
    assert report["commit"] == commit and report["noteAttached"] is True
    bundle = Path(report["bundle"])
    all_lines = [ln for ln in bundle.read_text().splitlines() if ln.strip()]
    stmts = payloads(bundle)
    lines = [ln for ln, s in zip(all_lines, stmts, strict=True) if s["predicateType"] == SLSA]
    assert len(lines) == 2 == len(report["checks"])
    # det prints "2 passed, 0 failed": its test-result statement rides in the same bundle.
    tests = [s for s in stmts if s["predicateType"] == TEST_RESULT]
    assert len(tests) == 1 and tests[0]["predicate"]["result"] == "PASSED"
    json_format.Parse(
        json.dumps(tests[0]["predicate"]), test_result_pb2.TestResult(), ignore_unknown_fields=False
    )

    public = load_public_key(pub)
    sslib_key = SSlibKey.from_crypto(public.key, keyid=public.keyid)
    for line in all_lines:
        assert public.keyid in SslibEnvelope.from_dict(json.loads(line)).verify([sslib_key], 1)
    for line, stmt in zip(lines, [s for s in stmts if s["predicateType"] == SLSA], strict=True):
        # Independent DSSE implementation accepts our signature.
        assert public.keyid in SslibEnvelope.from_dict(json.loads(line)).verify([sslib_key], 1)
        # Independent schemas accept the statement and predicate, unknown fields rejected.
        pb = json_format.Parse(
            json.dumps(stmt), statement_pb2.Statement(), ignore_unknown_fields=False
        )
        ItaStatement.copy_from_pb(pb).validate()
        json_format.Parse(
            json.dumps(stmt["predicate"]), provenance_pb2.Provenance(), ignore_unknown_fields=False
        )
        ext = stmt["predicate"]["buildDefinition"]["externalParameters"]
        name = ext["check"]
        # Evaluate once, bind everything: the drvPath is what nix evaluates at the commit.
        assert ext["drvPath"] == nix("eval", "--raw", f"{flake}#checks.{SYSTEM}.{name}.drvPath")
        assert ext["source"] == {
            "gitCommit": commit,
            "narHash": ext["source"]["narHash"],
            "dirty": False,
        }
        # Subjects: hex NAR SHA-256, exactly what `nix-store --dump | sha256sum` prints.
        for subject in stmt["subject"]:
            dumped = subprocess.run(
                ["nix-store", "--dump", subject["name"]], capture_output=True, check=True
            ).stdout
            assert subject["digest"]["sha256"] == sha256_hex(dumped)
        # The build log byproduct is the SHA-256 of what `nix log DRV` prints.
        log = subprocess.run(
            ["nix", "--extra-experimental-features", "nix-command", "log", ext["drvPath"]],
            capture_output=True,
            check=True,
        ).stdout
        byproducts = {b["name"]: b for b in stmt["predicate"]["runDetails"]["byproducts"]}
        assert byproducts["build.log"]["digest"]["sha256"] == sha256_hex(log)
        internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
        assert internal["nix"]["sandbox"] is True and internal["nix"]["sandboxFallback"] is False
        assert internal["outputCheck"] == "built"
        deps = stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert deps[0]["name"] == "source" and deps[0]["digest"]["gitCommit"] == commit
        dep_paths = {d["name"] for d in deps[1:]}
        assert ext["drvPath"] in dep_paths
        assert any(p.endswith("-bootstrap-tools") for p in dep_paths)
        if name == "chain":  # the input derivation is in the closure, with its digest
            lib = [d for d in deps if d["name"].endswith("-lib.drv")]
            assert len(lib) == 1 and len(lib[0]["digest"]["sha256"]) == 64

    # The git note holds exactly the bundle's lines.
    note = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD")
    assert note.splitlines() == all_lines


def test_cache_hit_skips_building_and_force_reattests(
    flake: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    assert cli("build", str(flake), "--key", str(key))[0] == 0
    before = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    code, out, err = cli("build", str(flake), "--key", str(key), "--json")
    assert code == 0
    report = json.loads(out)
    assert {c["status"] for c in report["checks"]} == {"cached"}
    assert "cache hit" in err and ": building /nix" not in err
    # The cached bundle carries the same lines as the note, test results included.
    assert Path(report["bundle"]).read_text().splitlines() == before
    code, out, err = cli("build", str(flake), "--key", str(key), "--json", "--force")
    assert code == 0
    assert {c["status"] for c in json.loads(out)["checks"]} == {"attested"}
    # Already-valid outputs were not trusted blindly: they were rebuilt and compared.
    assert {c["outputCheck"] for c in json.loads(out)["checks"]} == {"rebuilt-and-compared"}
    note = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    # The key's own statements for the same drvPaths are superseded, not piled up.
    # (A test-result statement has no clock in it, and Ed25519 is deterministic, so
    # re-signing the same results gives the same line: only provenance lines must differ.)
    assert len(note) == 3 and not {ln for ln in note if _ptype(ln) == SLSA} & set(before)


def test_second_key_adds_to_the_note(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, _ = keypair
    assert cli("build", str(flake), "--key", str(key), "--check", "det")[0] == 0
    assert cli("keygen", "--out-dir", str(tmp_path / "k2"))[0] == 0
    code, out, _ = cli(
        "build",
        str(flake),
        "--key",
        str(tmp_path / "k2" / "provenance.key"),
        "--check",
        "det",
        "--json",
    )
    assert code == 0 and json.loads(out)["checks"][0]["status"] == "attested"
    note = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    assert len(note) == 4  # provenance + test result, per key
    # A forced re-attestation by the first key replaces only its own lines.
    assert cli("build", str(flake), "--key", str(key), "--check", "det", "--force")[0] == 0
    after = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    assert len(after) == 4 and set(note[2:]) <= set(after)  # the second key's lines stay
    assert note[0] not in after and _ptype(note[0]) == SLSA  # the first key's is replaced


def test_check_selection_and_unknown_check(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    code, out, _ = cli("build", str(flake), "--key", str(key), "--check", "chain", "--json")
    assert code == 0 and [c["name"] for c in json.loads(out)["checks"]] == ["chain"]
    code, _, err = cli("build", str(flake), "--key", str(key), "--check", "nope")
    assert code == 2
    assert "unknown check nope" in err and "chain" in err and "det" in err


def test_dirty_tree_refused_then_labelled(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    (flake / "tests" / "test_det.sh").write_text("echo changed\n")
    code, _, err = cli("build", str(flake), "--key", str(key))
    assert code == 3 and "tests/test_det.sh" in err and "--allow-dirty" in err
    code, out, err = cli(
        "build", str(flake), "--key", str(key), "--allow-dirty", "--json", "--check", "det"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["dirty"] is True and report["noteAttached"] is False
    stmt = payloads(Path(report["bundle"]))[0]
    src = stmt["predicate"]["buildDefinition"]["externalParameters"]["source"]
    assert src["dirty"] is True and src["dirtyFiles"] == ["tests/test_det.sh"]
    # The dirty edit is what was built: the drvPath is the work tree's, not HEAD's.
    ext = stmt["predicate"]["buildDefinition"]["externalParameters"]
    assert ext["drvPath"] == nix("eval", "--raw", f"path:{flake}#checks.{SYSTEM}.det.drvPath")
    assert git(flake, "notes", "--ref", "refs/notes/provenance", "list") == ""


def test_evaluation_is_bound_to_the_commit(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    (flake / "new_untracked.txt").write_text("not part of the flake\n")
    code, out, err = cli("build", str(flake), "--key", str(key), "--json", "--check", "det")
    assert code == 0
    assert "untracked" in err and "new_untracked.txt" in err
    drv = json.loads(out)["checks"][0]["drvPath"]
    head = git(flake, "rev-parse", "HEAD")
    assert drv == nix("eval", "--raw", f"git+file://{flake}?rev={head}#checks.{SYSTEM}.det.drvPath")


def test_attested_drv_path_is_the_pure_one(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = keypair
    repo = make_flake(
        tmp_path / "r",
        extra_checks='{ mk, tests }: { env = mk "env" "echo $home > $out" '
        '{ home = builtins.getEnv "HOME"; }; }',
    )
    head = git(repo, "rev-parse", "HEAD")
    ref = f"git+file://{repo}?rev={head}#checks.{SYSTEM}.env.drvPath"
    pure = nix("eval", "--raw", ref)
    impure = nix("eval", "--raw", "--impure", ref)
    assert pure != impure  # getEnv is "" in pure mode: the drvPath depends on purity
    monkeypatch.setenv("NIX_CONFIG", os.environ["NIX_CONFIG"] + "\npure-eval = false")
    code, out, err = cli("build", str(repo), "--key", str(key), "--check", "env", "--json")
    assert code == 0, err
    assert json.loads(out)["checks"][0]["drvPath"] == pure


def test_failing_check_is_never_attested(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    repo = make_flake(
        tmp_path / "r",
        extra_checks='{ mk, tests }: { fail = mk "fail-check" "echo \'1 passed, 1 failed\'; exit 3" { }; }',
    )
    code, _out, err = cli("build", str(repo), "--key", str(key), "--json")
    assert code == 1
    assert "1 passed, 1 failed" in err  # the tail of the log is shown
    assert "fail" in err and "never attested" in err
    report_lines = (repo / ".provenance").glob("*.intoto.jsonl")
    stmts = [s for b in report_lines for s in payloads(b)]
    names = {
        s["predicate"]["buildDefinition"]["externalParameters"]["check"]
        for s in stmts
        if s["predicateType"] == SLSA
    }
    assert names == {"det", "chain"}  # the passing ones are attested, the failing one is not


def test_no_chroot_refused(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    repo = make_flake(
        tmp_path / "r",
        extra_checks='{ mk, tests }: { escape = mk "escape" "echo hi > $out" { __noChroot = true; }; }',
    )
    code, _, err = cli("build", str(repo), "--key", str(key), "--check", "escape")
    assert code == 3 and "__noChroot" in err
    assert (
        not list((repo / ".provenance").glob("*.jsonl"))
        if (repo / ".provenance").exists()
        else True
    )


def test_stale_output_built_unsandboxed_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    # Its output records what the builder can see: different inside and outside the sandbox.
    repo = make_flake(
        tmp_path / "r",
        extra_checks='{ mk, tests }: { probe = mk "probe" "busybox ls / > $out" { }; }',
    )
    head = git(repo, "rev-parse", "HEAD")
    nix(
        "build",
        "--no-link",
        "--option",
        "sandbox",
        "false",
        f"git+file://{repo}?rev={head}#checks.{SYSTEM}.probe",
    )
    code, _, err = cli("build", str(repo), "--key", str(key), "--check", "probe")
    assert code == 3
    assert "does not reproduce" in err and "nix store delete" in err
    assert git(repo, "notes", "--ref", "refs/notes/provenance", "list") == ""


def test_sandbox_off_is_refused(flake: Path, keypair: tuple[Path, Path], fake_nix: Path) -> None:
    # Real nix cannot be made to ignore --option sandbox true here (root, no daemon), as it
    # would under a daemon for an untrusted user: a wrapper reports what such a daemon would.
    real = subprocess.run(
        ["which", "nix"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wrapper = fake_nix / "nix"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *show-config*|*"config show"*)\n'
        '  echo \'{"sandbox":{"value":false},"sandbox-fallback":{"value":false}}\'; exit 0;;\n'
        "esac\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    key, _ = keypair
    code, _, err = cli("build", str(flake), "--key", str(key), env={"PROVENANCE_NIX": str(wrapper)})
    assert code == 3 and "sandbox=False" in err


@pytest.mark.parametrize(
    ("setup", "expect_code", "expect"),
    [
        ("not_git", 2, "not inside a git repository"),
        ("not_flake", 2, "not a flake"),
        ("no_checks", 2, "no `checks` output"),
        ("no_commits", 2, "no commits yet"),
    ],
)
def test_bad_projects(
    tmp_path: Path, keypair: tuple[Path, Path], setup: str, expect_code: int, expect: str
) -> None:
    key, _ = keypair
    d = tmp_path / "p"
    d.mkdir()
    if setup == "not_git":
        (d / "flake.nix").write_text("{ outputs = { self }: { }; }")
    elif setup == "not_flake":
        subprocess.run(["git", "init", "-q", str(d)], check=True)
    elif setup == "no_checks":
        (d / "flake.nix").write_text("{ outputs = { self }: { }; }")
        subprocess.run(["git", "init", "-q", str(d)], check=True)
        subprocess.run(["git", "-C", str(d), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(d), "commit", "-qm", "x"], check=True)
    elif setup == "no_commits":
        (d / "flake.nix").write_text("{ outputs = { self }: { }; }")
        subprocess.run(["git", "init", "-q", str(d)], check=True)
    code, _, err = cli("build", str(d), "--key", str(key))
    assert code == expect_code, err
    assert expect in err
    assert "Traceback" not in err


def test_missing_key_and_missing_nix(flake: Path, keypair: tuple[Path, Path]) -> None:
    code, _, err = cli("build", str(flake))
    assert code == 2 and "no signing key" in err
    code, _, err = cli("build", str(flake), "--key", str(flake / "nope.key"))
    assert code == 2 and "does not exist" in err and "keygen" in err
    key, _ = keypair
    code, _, err = cli(
        "build", str(flake), "--key", str(key), env={"PROVENANCE_NIX": "/nonexistent/nix"}
    )
    assert code == 4 and "nix is not installed" in err and "apt-get install nix-bin" in err
    code, _, err = cli(
        "build", str(flake), env={"PROVENANCE_KEY": str(key), "PROVENANCE_NIX": "/x/nix"}
    )
    assert code == 4  # the key came from the environment variable


def test_failed_write_leaves_no_bundle_and_no_note(flake: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    blocker = flake / "afile"
    blocker.write_text("a file where a directory is needed\n")
    code, _, err = cli(
        "build", str(flake), "--key", str(key), "--output", str(blocker / "out.intoto.jsonl")
    )
    assert code == 2 and "cannot write" in err
    assert git(flake, "notes", "--ref", "refs/notes/provenance", "list") == ""
    assert blocker.read_text().startswith("a file")


def test_keygen_cli(tmp_path: Path) -> None:
    code, out, _ = cli("keygen", "--out-dir", str(tmp_path), "--json")
    assert code == 0 and len(json.loads(out)["keyid"]) == 64
    code, _, err = cli("keygen", "--out-dir", str(tmp_path))
    assert code == 2 and "--force" in err


def test_help_explains_commands() -> None:
    code, out, _ = cli("--help")
    assert code == 0 and "build" in out and "keygen" in out
    code, out, _ = cli("build", "--help")
    assert code == 0 and "--allow-dirty" in out and "PROVENANCE_KEY" in out


def test_force_never_drops_a_line_another_key_cosigned(
    flake: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, _ = keypair
    assert cli("build", str(flake), "--key", str(key), "--check", "chain")[0] == 0
    note = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    (line,) = note
    other, _, _ = keys.generate(tmp_path / "co")
    payload = base64.b64decode(json.loads(line)["payload"])
    cosigned = dsse.sign(payload, [keys.load_signer(key), keys.load_signer(other)]).to_json()
    git(flake, "notes", "--ref", "refs/notes/provenance", "append", "-m", cosigned, "HEAD")
    assert cli("build", str(flake), "--key", str(key), "--check", "chain", "--force")[0] == 0
    after = git(flake, "notes", "--ref", "refs/notes/provenance", "show", "HEAD").splitlines()
    assert cosigned in after  # the co-signer's signature is not ours to drop
    assert line not in after  # our own earlier statement is superseded
