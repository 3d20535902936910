"""nixenv.py and realise.py without a real build: what we pass, what we refuse, what counts.

Real-nix attacks are in tests/integration/test_nix_environment.py; here are the shapes
that Nix 2.8 on this machine cannot produce (newer quoting, newer settings, a daemon, a
Nix that exits 0 having built nothing), fed from recorded output or a stand-in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provenance.attest import realise
from provenance.doors.nix import BuildResult, Nix, NixConfig, StoreInfo
from provenance.doors.nixparse import parse_config
from provenance.errors import RefusedError, UsageError
from provenance.policy import nixenv
from provenance.progress import Reporter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nix"
DRV = "/nix/store/" + "a" * 32 + "-check.drv"
OUT = "/nix/store/" + "b" * 32 + "-check"


def forced_2_8() -> dict[str, Any]:
    """Real `nix show-config --json` of Nix 2.8 under our options (fixture README)."""
    return json.loads((FIXTURES / "show-config-2.8-forced.json").read_text())  # type: ignore[no-any-return]


def with_values(raw: dict[str, Any], **values: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(raw))
    for k, v in values.items():
        raw.setdefault(k.replace("_", "-"), {})["value"] = v
    return raw


LOCAL = StoreInfo("local", None)


# -- what we pass ------------------------------------------------------------------------


def test_only_settings_this_nix_lists_are_passed() -> None:
    env = nixenv.establish(Nix(), parse_config(forced_2_8()), LOCAL)
    assert "impure-env" not in env.options and "external-builders" not in env.options
    assert env.options["substitute"] == "false" and env.options["sandbox-paths"] == ""
    assert Path(env.options["build-hook"]).name == nixenv.DECLINE_HOOK_NAME
    assert "substitute" not in env.dependency_options  # dependencies: the user's caches
    newer = with_values(forced_2_8(), impure_env={}, external_builders=[])
    env = nixenv.establish(Nix(), parse_config(newer), LOCAL)
    assert env.options["external-builders"] == "[]"
    assert "impure-env" not in env.options  # its experimental feature is off
    enabled = with_values(newer, experimental_features=["flakes", "configurable-impure-env"])
    assert "impure-env" in nixenv.establish(Nix(), parse_config(enabled), LOCAL).options


def test_the_record_is_what_gate_and_verify_accept() -> None:
    env = nixenv.establish(Nix(), parse_config(forced_2_8()), LOCAL)
    record = env.record("2.8.0")
    assert record["sandboxEnforcement"] == "local-store" and record["sandboxPaths"] == []
    assert set(nixenv.REQUIRED) <= set(record["settings"])
    internal = {"nix": record, "outputCheck": "built", "dependencyOutputs": "taken-from-store"}
    assert nixenv.recorded_problem(internal, nixenv.EnvironmentPolicy()) is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("post-build-hook", "/etc/nix/upload-to-cache.sh"),
        ("pre-build-hook", "/etc/nix/pre"),
        ("build-hook", "/home/mallory/hook"),
        ("substitute", True),
        ("plugin-files", ["/lib/evil.so"]),
        ("allowed-impure-host-deps", ["/usr/lib"]),
    ],
)
def test_an_option_nix_did_not_take_is_refused(setting: str, value: Any) -> None:
    raw = with_values(forced_2_8(), **{setting.replace("-", "_"): value})
    with pytest.raises(RefusedError, match=f"nix did not take --option {setting}"):
        nixenv.establish(Nix(), parse_config(raw), LOCAL)


def test_sandbox_paths_that_survive_our_option_are_refused() -> None:
    raw = with_values(forced_2_8(), sandbox_paths=["/hostdata=/tmp/x"])
    with pytest.raises(RefusedError, match="sandbox-paths"):
        nixenv.establish(Nix(), parse_config(raw), LOCAL)


def test_sandbox_paths_of_nix_2_34_are_read_with_their_source() -> None:
    raw = {
        "sandbox-paths": {
            "value": {
                "/bin/sh": {"optional": False, "source": "/usr/bin/bash-static"},
                "/dev/nvidiactl": {"optional": True, "source": "/dev/nvidiactl"},
            }
        }
    }
    assert parse_config(raw).sandbox_paths == ("/bin/sh=/usr/bin/bash-static", "/dev/nvidiactl?")
    assert parse_config({"sandbox-paths": {"value": ["/b=/c", "/a"]}}).sandbox_paths == (
        "/a",
        "/b=/c",
    )


# -- an untrusted daemon -----------------------------------------------------------------


def daemon_nix(tmp_path: Path, daemon: dict[str, Any]) -> Nix:
    """A nix whose config read without NIX_CONFIG (the daemon's view) prints `daemon`."""
    script = tmp_path / "nix"
    (tmp_path / "daemon.json").write_text(json.dumps(daemon))
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--version*) echo "nix (Nix) 2.26.3"; exit 0;; esac\n'
        f'cat "{tmp_path}/daemon.json"\n'
    )
    script.chmod(0o755)
    return Nix(str(script))


def daemon_config(**values: Any) -> dict[str, Any]:
    base = {
        "sandbox": True,
        "sandbox-fallback": False,
        "sandbox-paths": [],
        "build-hook": ["/usr/bin/nix", "__build-remote"],  # Nix's own: declines, no builders
        "builders": "@/etc/nix/machines",
        "pre-build-hook": "",
        "post-build-hook": "",
        "diff-hook": None,
        "run-diff-hook": False,
        "allowed-impure-host-deps": [],
        "plugin-files": [],
        "substitute": True,
        "impure-env": {},
    }
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return {k: {"value": v} for k, v in base.items()}


UNTRUSTED = StoreInfo("daemon", False)


def test_an_untrusted_daemon_with_a_post_build_hook_is_refused(tmp_path: Path) -> None:
    nix = daemon_nix(tmp_path, daemon_config(post_build_hook="/etc/nix/upload.sh"))
    ours = parse_config(forced_2_8())
    with pytest.raises(RefusedError, match=r"post-build-hook = '/etc/nix/upload.sh'.*rewrite"):
        nixenv.establish(nix, ours, UNTRUSTED)


def test_an_untrusted_daemon_is_recorded_as_read_not_proven(tmp_path: Path) -> None:
    paths = ["/bin/sh=/usr/bin/bash-static"]
    nix = daemon_nix(tmp_path, daemon_config(sandbox_paths=paths))
    env = nixenv.establish(nix, parse_config(forced_2_8()), UNTRUSTED)
    record = env.record("2.26.3")
    assert record["sandboxEnforcement"] == "daemon-nix-conf"
    assert record["sandboxPaths"] == paths  # recorded as the daemon has them
    # What the daemon takes from an untrusted client, and nothing else, is ours.
    assert record["settings"]["builders"] == "" and record["settings"]["substitute"] is False
    internal = {"nix": record, "outputCheck": "built", "dependencyOutputs": "taken-from-store"}
    problem = nixenv.recorded_problem(internal, nixenv.EnvironmentPolicy())
    assert problem is not None and "/bin/sh=/usr/bin/bash-static" in problem
    allowed = nixenv.EnvironmentPolicy(frozenset(paths))
    assert nixenv.recorded_problem(internal, allowed) is None


# -- what Nix says it did ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.8.0", DRV),  # rejects ^*, builds the outputs of a bare .drv
        ("2.12.1", DRV),
        ("2.13.0", f"{DRV}^*"),  # a bare .drv is the file itself from here on
        ("2.26.3", f"{DRV}^*"),
        ("2.34.8", f"{DRV}^*"),
        ("2.24.0pre20240101_abc", f"{DRV}^*"),
        ("2.91.1", f"{DRV}^*"),  # Lix
        ("weird", f"{DRV}^*"),
    ],
)
def test_installable(version: str, expected: str) -> None:
    assert nixenv.installable(DRV, version) == expected


@pytest.mark.parametrize("q", ["'", '"'])  # 2.8 .. 2.33, and 2.34
def test_nondeterminism_in_both_quote_styles(q: str) -> None:
    line = f"error: derivation {q}{DRV}{q} may not be deterministic: output {q}{OUT}{q} differs"
    assert nixenv.nondeterministic_outputs(f"checking outputs of {q}{DRV}{q}...\n{line}") == [OUT]
    assert nixenv.nondeterministic_outputs(f"check> {line}") is None  # a test's own log line


@pytest.mark.parametrize("q", ["'", '"'])
def test_rebuild_check_reads_both_quote_styles(tmp_path: Path, q: str) -> None:
    script = tmp_path / "nix"
    script.write_text(
        "#!/bin/sh\ncat >&2 <<'EOF'\n"
        f"checking outputs of {q}{DRV}{q}...\n"
        f"note: keeping build directory {q}/tmp/nix-build-check.drv-0{q}\n"
        f"error: derivation {q}{DRV}{q} may not be deterministic: output {q}{OUT}{q} differs\n"
        "EOF\nexit 1\n"
    )
    script.chmod(0o755)
    check = Nix(str(script)).rebuild_check(f"{DRV}^*")
    assert check.reproduced is False and check.differing_output == OUT
    assert check.build_dir == "/tmp/nix-build-check.drv-0"


class _QuietNix(Nix):
    """A Nix that exits 0 from every build having built nothing (a bare .drv on >= 2.13)."""

    def __init__(self, says: str = "") -> None:
        super().__init__("nix")
        self.says = says
        self.targets: list[str] = []

    def version(self) -> str:
        return "2.26.3"

    def build(self, drv_path: str, **kw: Any) -> BuildResult:
        self.targets.append(drv_path)
        return BuildResult(DRV, {"out": OUT}, self.says)


ENV = nixenv.BuildEnvironment({"substitute": "false"}, NixConfig(True, False, (), "x"), "local")


def test_exit_0_of_a_rebuild_is_not_a_reproduction() -> None:
    quiet = _QuietNix()
    with pytest.raises(RefusedError, match="without rebuilding"):
        realise.for_attestation(quiet, ENV, "c", DRV, {"out": OUT}, [OUT], [], "2.26.3", Reporter())
    assert quiet.targets == [f"{DRV}^*"]


def test_a_build_nix_did_not_report_is_rebuild_checked() -> None:
    # Built "by nobody": the output must be proven by a rebuild, which says nothing either.
    quiet = _QuietNix()
    with pytest.raises(RefusedError, match="without rebuilding"):
        realise.for_attestation(quiet, ENV, "c", DRV, {"out": OUT}, [], [], "2.26.3", Reporter())
    assert len(quiet.targets) == 2  # the build, then the rebuild


def test_another_machines_build_is_not_ours() -> None:
    remote = _QuietNix(f"building '{DRV}' on 'ssh://builder'...")
    with pytest.raises(RefusedError):
        realise.for_attestation(remote, ENV, "c", DRV, {"out": OUT}, [], [], "2.26.3", Reporter())
    local = _QuietNix(f'building "{DRV}"...')
    done = realise.for_attestation(local, ENV, "c", DRV, {"out": OUT}, [], [], "2.26.3", Reporter())
    assert done.how == realise.BUILT and local.targets == [f"{DRV}^*"]


def test_outputs_nix_built_must_be_the_evaluated_ones() -> None:
    odd = _QuietNix(f"building '{DRV}'...")
    with pytest.raises(RefusedError, match="not the evaluated ones"):
        realise.for_attestation(
            odd, ENV, "c", DRV, {"out": OUT + "-other"}, [], [], "2.26.3", Reporter()
        )


# -- the policy and the hook -------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        {"allowed-sandbox-paths": "/bin/sh"},
        {"allowed-sandbox-paths": [1]},
        {"sandbox-enforcement": ["anything"]},
        {"sandbox-enforcement": []},
        {"typo": 1},
        "not a table",
    ],
)
def test_a_bad_environment_table_is_a_usage_error(table: Any) -> None:
    with pytest.raises(UsageError, match="environment"):
        nixenv.EnvironmentPolicy.from_table(table, "provenance.toml")


def test_the_decline_hook_is_ours_and_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hook = Path(nixenv.decline_hook())
    assert hook.parent == tmp_path / "cache" / "provenance"
    assert hook.stat().st_mode & 0o777 == 0o755
    assert b"# decline-permanently" in hook.read_bytes()
    hook.write_text("#!/bin/sh\necho '# accept'\n")  # tampered with: written again
    assert b"decline-permanently" in Path(nixenv.decline_hook()).read_bytes()
    hook.parent.chmod(0o777)  # writable by others: never run code from there
    assert Path(nixenv.decline_hook()).parent != hook.parent
