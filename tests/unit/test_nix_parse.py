"""The nix JSON parsers on recorded samples of every shape (2.8 here, newer from upstream)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.hashing import sha256_to_hex
from provenance.nix import (
    parse_config,
    parse_derivations,
    parse_flake_metadata,
    parse_path_info,
)

SAMPLES = Path(__file__).parent.parent / "fixtures" / "nix"


def load(name: str) -> object:
    return json.loads((SAMPLES / name).read_text())


@pytest.mark.parametrize(
    "sample", ["path-info-2.8.json", "path-info-2.19-object.json", "path-info-newest.json"]
)
def test_path_info_shapes_normalise_to_hex_and_full_paths(sample: str) -> None:
    raw = load(sample)
    infos = parse_path_info(raw)
    assert infos, "a valid path must be parsed"
    for path, info in infos.items():
        assert path.startswith("/nix/store/") and info.path == path
        assert len(info.nar_hash) == 64 and int(info.nar_hash, 16) >= 0
        assert all(r.startswith("/nix/store/") for r in info.references)
    # Invalid paths (null in 2.19+, valid:false in 2.8/Lix) are left out, never guessed.
    assert not any("ncdu" in p for p in infos)


def test_path_info_newest_matches_sri() -> None:
    raw = load("path-info-newest.json")
    info = next(iter(parse_path_info(raw).values()))
    assert info.nar_hash == sha256_to_hex("sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc=")
    assert info.ca is not None and info.ca.startswith("nar:")


def test_path_info_invalid_entry_in_2_8_list() -> None:
    raw = [{"path": "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", "valid": False}]
    assert parse_path_info(raw) == {}


@pytest.mark.parametrize(
    "sample",
    ["show-derivation-2.8.json", "derivation-show-2.18.json", "derivation-show-newest.json"],
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


def test_show_derivation_2_8_chain_has_input_drv() -> None:
    drvs = parse_derivations(load("show-derivation-2.8.json"))  # type: ignore[arg-type]
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


def test_config_not_hermetic_when_relaxed_or_fallback() -> None:
    relaxed = parse_config({"sandbox": {"value": "relaxed"}, "sandbox-fallback": {"value": False}})
    assert not relaxed.hermetic
    fallback = parse_config({"sandbox": {"value": True}, "sandbox-fallback": {"value": True}})
    assert not fallback.hermetic
    missing = parse_config({})
    assert not missing.hermetic


@pytest.mark.parametrize("sample", ["flake-metadata-2.8.json", "flake-metadata-newest.json"])
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
