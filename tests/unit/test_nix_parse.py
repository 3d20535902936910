"""The nix JSON parsers on recorded samples of every shape: real 2.8, 2.26 and 2.34 output
(tests/fixtures/nix/README.md says where each came from), and 2.18/2.19 from upstream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.doors.nixparse import (
    parse_build_result,
    parse_config,
    parse_derivations,
    parse_flake_metadata,
    parse_path_info,
    parse_rebuild_failure,
    parse_store_info_json,
    parse_store_info_text,
    parse_store_verify,
)
from provenance.formats.hashing import sha256_to_hex

SAMPLES = Path(__file__).parent.parent / "fixtures" / "nix"


def load(name: str) -> object:
    return json.loads((SAMPLES / name).read_text())


PATH_INFO = [
    "path-info-2.8.json",
    "path-info-2.19-object.json",
    "path-info-2.26.json",
    "path-info-2.34.json",
    "path-info-2.34-format1.json",
    "path-info-2.34-format2.json",
]


@pytest.mark.parametrize("sample", PATH_INFO)
def test_path_info_shapes_normalise_to_hex_and_full_paths(sample: str) -> None:
    raw = load(sample)
    infos = parse_path_info(raw)
    assert infos, "a valid path must be parsed"
    for path, info in infos.items():
        assert path.startswith("/nix/store/") and info.path == path
        assert len(info.nar_hash) == 64 and int(info.nar_hash, 16) >= 0
        assert all(r.startswith("/nix/store/") for r in info.references)
    # Invalid paths (null in 2.19+, valid:false in 2.8/Lix) are left out, never guessed.
    assert not any("ncdu" in p or "missing" in p for p in infos)


@pytest.mark.parametrize("sample", PATH_INFO[2:])
def test_path_info_recorded_on_modern_nix(sample: str) -> None:
    # The recordings hold the chain check's output and a path that is not in the store.
    infos = parse_path_info(load(sample))
    (info,) = infos.values()
    assert info.path.endswith("-chain-check")
    assert info.nar_hash == sha256_to_hex("sha256-rcU0Sek2slflcmv68/fyNuOQkC+bd7OGN3LsBFgjyHQ=")
    assert info.nar_size == 120 and info.ca is None and info.ultimate
    assert info.deriver is not None and info.deriver.startswith("/nix/store/")
    assert info.deriver.endswith("-chain-check.drv")


def test_path_info_2_34_format2_is_format1_with_basenames() -> None:
    # Same store, same paths: only the spelling differs, and the parser hides it.
    assert parse_path_info(load("path-info-2.34-format2.json")) == parse_path_info(
        load("path-info-2.34-format1.json")
    )


def test_path_info_invalid_entry_in_2_8_list() -> None:
    raw = [{"path": "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", "valid": False}]
    assert parse_path_info(raw) == {}


@pytest.mark.parametrize(
    "sample",
    [
        "show-derivation-2.8.json",
        "derivation-show-2.18.json",
        "derivation-show-2.26.json",
        "derivation-show-2.34.json",
    ],
)
def test_derivation_shapes(sample: str) -> None:
    drvs = parse_derivations(load(sample))  # type: ignore[arg-type]
    assert drvs
    for path, d in drvs.items():
        assert path.endswith(".drv") and path.startswith("/nix/store/")
        assert d.outputs and all(
            o.path is None or o.path.startswith("/nix/store/") for o in d.outputs
        )
        for dep, outs in d.input_drvs.items():
            assert dep.startswith("/nix/store/") and dep.endswith(".drv")
            assert outs and all(isinstance(o, str) for o in outs)
        assert all(s.startswith("/nix/store/") for s in d.input_srcs)


@pytest.mark.parametrize(
    "sample", ["show-derivation-2.8.json", "derivation-show-2.26.json", "derivation-show-2.34.json"]
)
def test_chain_has_its_input_drv_and_source(sample: str) -> None:
    drvs = parse_derivations(load(sample))  # type: ignore[arg-type]
    chain = next(d for p, d in drvs.items() if p.endswith("chain-check.drv"))
    assert [p for p in chain.input_drvs if p.endswith("-lib.drv")]
    assert chain.input_drvs[next(iter(chain.input_drvs))] == ("out",)
    assert not chain.fixed_output and not chain.no_chroot


def test_fixed_output_and_no_chroot_flags() -> None:
    raw = {
        "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-f.drv": {
            "outputs": {
                "out": {
                    "path": "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-f",
                    "hash": "ab",
                    "hashAlgo": "sha256",
                }
            },
            "inputSrcs": [],
            "inputDrvs": {},
            "system": "x",
            "builder": "b",
            "env": {"outputHash": "ab", "__noChroot": "1"},
        },
        "/nix/store/cccccccccccccccccccccccccccccccc-i.drv": {
            "outputs": {"out": {"hashAlgo": "r:sha256", "impure": True}},
            "inputSrcs": [],
            "inputDrvs": {},
            "system": "x",
            "builder": "b",
            "env": {},
        },
    }
    drvs = parse_derivations(raw)
    fod = drvs["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-f.drv"]
    assert fod.fixed_output and fod.no_chroot
    imp = drvs["/nix/store/cccccccccccccccccccccccccccccccc-i.drv"]
    assert imp.impure and imp.outputs[0].path is None


def test_config_2_8() -> None:
    cfg = parse_config(load("show-config-2.8.json"))  # type: ignore[arg-type]
    assert cfg.sandbox is True and cfg.sandbox_fallback is False and cfg.hermetic
    assert cfg.system.endswith("-linux")


@pytest.mark.parametrize("sample", ["config-show-2.26.json", "config-show-2.34.json"])
def test_config_debian_13_defaults_keep_the_host_source_of_sandbox_paths(sample: str) -> None:
    # Recorded without a nix.conf: Debian 13+'s defaults. 2.26 lists "/bin/sh=SOURCE"; 2.34
    # prints {"/bin/sh": {"source": SOURCE}}: both must say which host file is bound in.
    cfg = parse_config(load(sample))  # type: ignore[arg-type]
    assert cfg.sandbox_paths == ("/bin/sh=/usr/bin/bash-static",)
    assert cfg.sandbox is True and cfg.system.endswith("-linux")


def test_config_sandbox_paths_object_spellings() -> None:
    raw = {
        "sandbox-paths": {
            "value": {
                "/bin/sh": {"optional": False, "source": "/usr/bin/bash-static"},
                "/dev/kvm": {"optional": True, "source": "/dev/kvm"},
                "/etc/x": {"optional": False},
            }
        }
    }
    assert parse_config(raw).sandbox_paths == (
        "/bin/sh=/usr/bin/bash-static",
        "/dev/kvm?",
        "/etc/x",
    )


def test_config_not_hermetic_when_relaxed_or_fallback() -> None:
    relaxed = parse_config({"sandbox": {"value": "relaxed"}, "sandbox-fallback": {"value": False}})
    assert not relaxed.hermetic
    fallback = parse_config({"sandbox": {"value": True}, "sandbox-fallback": {"value": True}})
    assert not fallback.hermetic
    missing = parse_config({})
    assert not missing.hermetic


@pytest.mark.parametrize(
    "sample", ["flake-metadata-2.8.json", "flake-metadata-2.26.json", "flake-metadata-2.34.json"]
)
def test_flake_metadata(sample: str) -> None:
    meta = parse_flake_metadata(load(sample))  # type: ignore[arg-type]
    assert len(meta.nar_hash) == 64
    assert meta.rev is None or len(meta.rev) == 40


def test_flake_metadata_inputs_and_dirty() -> None:
    raw = {
        "locked": {
            "narHash": "sha256-76E3DERc/JUzWSE+KhUZ44NpI/9CkTlhFp4MGwmz1Xw=",
            "type": "git",
            "url": "file:///x",
        },
        "locks": {
            "root": "root",
            "version": 7,
            "nodes": {
                "root": {"inputs": {"nixpkgs": "nixpkgs", "alias": ["nixpkgs"]}},
                "nixpkgs": {
                    "locked": {
                        "type": "github",
                        "owner": "NixOS",
                        "repo": "nixpkgs",
                        "rev": "a" * 40,
                        "narHash": "sha256-76E3DERc/JUzWSE+KhUZ44NpI/9CkTlhFp4MGwmz1Xw=",
                    }
                },
            },
        },
    }
    meta = parse_flake_metadata(raw)
    assert meta.rev is None  # dirty trees have no revision
    assert [i.name for i in meta.inputs] == ["nixpkgs"]  # `follows` lists are not nodes
    assert meta.inputs[0].rev == "a" * 40
    assert meta.inputs[0].uri == f"github:NixOS/nixpkgs/{'a' * 40}"


@pytest.mark.parametrize(
    "sample", ["build-json-2.8.json", "build-json-2.26.json", "build-json-2.34.json"]
)
def test_build_json_shapes(sample: str) -> None:
    raw = (SAMPLES / sample).read_bytes()
    result = parse_build_result(raw, "the log")
    assert result is not None
    assert result.drv_path.startswith("/nix/store/") and result.drv_path.endswith(
        "-chain-check.drv"
    )
    assert list(result.outputs) == ["out"] and result.outputs["out"].endswith("-chain-check")
    assert result.stderr == "the log"


@pytest.mark.parametrize("stdout", [b"", b"not json", b"[]", b"{}", b'[{"drvPath": "/x"}]', b"[1]"])
def test_build_json_without_a_result_is_none(stdout: bytes) -> None:
    assert parse_build_result(stdout, "") is None


@pytest.mark.parametrize("sample", ["store-info-2.26.json", "store-info-2.34.json"])
def test_store_info_trusted_as_number_or_bool(sample: str) -> None:
    # 2.26 prints "trusted": 1, 2.34 "trusted": true: both mean the store trusts us.
    info = parse_store_info_json((SAMPLES / sample).read_bytes())
    assert info is not None and info.url == "local" and info.trusted is True and info.local


def test_store_info_unknown_trust_and_unreadable_answers() -> None:
    info = parse_store_info_json(b'{"url": "daemon"}')
    assert info is not None and info.trusted is None and not info.local
    assert parse_store_info_json(b"Store URL: daemon") is None  # not JSON: ask without --json
    assert parse_store_info_json(b'["local"]') is None
    daemon = parse_store_info_text("Store URL: unix:///nix/var/nix/daemon-socket/socket\n")
    assert daemon.url == "unix:///nix/var/nix/daemon-socket/socket" and daemon.trusted is None
    assert parse_store_info_text("Store URL: local\n").url == "local"
    assert parse_store_info_text("something else").url == "unknown"


@pytest.mark.parametrize("q", ["'", '"'])  # 2.8 .. 2.33, and 2.34
def test_store_verify_lists_modified_and_untrusted_paths(q: str) -> None:
    a, b = "/nix/store/" + "a" * 32 + "-dep", "/nix/store/" + "b" * 32 + "-src"
    stderr = (
        f"path {q}{a}{q} was modified! expected hash {q}sha256:x{q}, got {q}sha256:y{q}\n"
        f"path {q}{b}{q} is untrusted\n"
        f"dep> path {q}{b}{q} was modified\n"  # a build log line, not nix's own: ignored
        "error: 1 paths were modified\n"
    )
    found = parse_store_verify(stderr)
    assert found.modified == (a,) and found.untrusted == (b,)
    assert parse_store_verify("") == parse_store_verify("checking 3 paths\n")


@pytest.mark.parametrize("q", ["'", '"'])
def test_rebuild_failure_names_the_differing_output_and_kept_directory(q: str) -> None:
    drv, out = "/nix/store/" + "a" * 32 + "-check.drv", "/nix/store/" + "b" * 32 + "-check"
    differs = f"error: derivation {q}{drv}{q} may not be deterministic: output {q}{out}{q} differs"
    found = parse_rebuild_failure(
        f"note: keeping build directory {q}/tmp/nix-build-0{q}\n{differs}"
    )
    assert found is not None and not found.reproduced
    assert found.differing_output == out and found.build_dir == "/tmp/nix-build-0"
    kept_nothing = parse_rebuild_failure(differs)
    assert kept_nothing is not None and kept_nothing.build_dir is None
    assert parse_rebuild_failure("error: builder for '/nix/store/x.drv' failed") is None


def test_a_nix_killed_by_a_signal_is_named_killed_not_silent() -> None:
    from provenance.doors.nixerrors import eval_error, failure  # noqa: PLC0415
    from provenance.doors.proc import Completed  # noqa: PLC0415

    killed = Completed(["nix", "build"], -9, b"", "building '/nix/store/x.drv'...")
    assert killed.signal == "SIGKILL (9)"
    err = failure(killed, "nix build failed")
    assert err.hint is not None and "out-of-memory" in err.hint
    ev = eval_error(Completed(["nix", "eval"], -25, b"", ""))
    assert "nix was killed by SIGXFSZ (25)" in ev.message
    exited = Completed(["nix", "eval"], 1, b"", "")
    assert exited.signal is None and "no error message" in eval_error(exited).message
    assert Completed(["nix"], -200, b"", "").signal == "signal 200"


def test_flake_metadata_lists_transitive_inputs_once() -> None:
    # issue 13: only the root's own inputs were listed; an input's inputs are built from too.
    def node(rev: str) -> dict[str, object]:
        return {
            "locked": {
                "type": "github",
                "owner": "o",
                "repo": rev,
                "rev": rev * 40,
                "narHash": "sha256-76E3DERc/JUzWSE+KhUZ44NpI/9CkTlhFp4MGwmz1Xw=",
            }
        }

    raw = {
        "locked": {"narHash": "sha256-76E3DERc/JUzWSE+KhUZ44NpI/9CkTlhFp4MGwmz1Xw=", "type": "git"},
        "locks": {
            "root": "root",
            "version": 7,
            "nodes": {
                "root": {"inputs": {"nixpkgs": "nixpkgs", "hm": "hm"}},
                "hm": {**node("b"), "inputs": {"nixpkgs": ["nixpkgs"], "utils": "utils"}},
                "utils": {**node("c"), "inputs": {"systems": "systems", "again": "nixpkgs"}},
                "systems": node("d"),
                "nixpkgs": node("a"),
            },
        },
    }
    meta = parse_flake_metadata(raw)
    assert [i.name for i in meta.inputs] == ["hm", "nixpkgs", "hm/utils", "hm/utils/systems"]
    assert meta.inputs[3].rev == "d" * 40


def test_a_bare_error_line_is_not_the_reason() -> None:
    # Nix 2.34 puts a bare "error:" over the trace; the cause is the nested error line
    # (a publish to a read-only cache said "failed: " and nothing else).
    stderr = (
        "error:\n"
        "       … while copying path '/nix/store/abc-det-check' to 'http://127.0.0.1:1'\n"
        "\n"
        "       error: unable to upload 'http://127.0.0.1:1/nar/x.nar.xz': HTTP error 405\n"
    )
    from provenance.doors import nixerrors  # noqa: PLC0415

    assert nixerrors.last_error(stderr) == (
        "unable to upload 'http://127.0.0.1:1/nar/x.nar.xz': HTTP error 405"
    )
    assert nixerrors.last_error("error: one line\n") == "one line"
    assert nixerrors.last_error("error:\n") == "error:"
