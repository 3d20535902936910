"""The statement's bytes do not depend on how they are built: the closure entries written as
plain JSON, and the predicate put into the envelope as it is, sign exactly the bytes that
one ResourceDescriptor model per entry, dumped by pydantic, gave before (statement.py)."""

from __future__ import annotations

import json
from typing import Any

from provenance.attest.statement import BuiltCheck, SourceInfo, provenance_statement
from provenance.doors.nix import FlakeMetadata, LockedInput, PathInfo
from provenance.formats.intoto import ResourceDescriptor, Statement

DRV = "/nix/store/" + "a" * 32 + "-check.drv"
FOD = "/nix/store/" + "f" * 32 + "-src.tar.gz.drv"
SRC = "/nix/store/" + "s" * 32 + "-source"


def _check() -> BuiltCheck:
    closure = [
        PathInfo(p, h * 64, 1, (), None, None, False)
        for p, h in ((SRC, "3"), (FOD, "2"), (DRV, "1"))
    ]
    return BuiltCheck(
        name="unit",
        attribute="checks.x86_64-linux.unit",
        drv_path=DRV,
        system="x86_64-linux",
        outputs={"out": ("/nix/store/" + "o" * 32 + "-check", "4" * 64)},
        output_check="built",
        log_sha256="5" * 64,
        closure=closure,
        dependency_check="taken-from-store",
        fixed_output_drvs=frozenset({FOD}),
        started_on="2026-01-01T00:00:00Z",
        finished_on="2026-01-01T00:00:01Z",
        invocation_id="00000000-0000-0000-0000-000000000000",
        log_normalised_sha256="6" * 64,
    )


def _source() -> SourceInfo:
    meta = FlakeMetadata(
        url="git+file:///r?rev=" + "c" * 40,
        rev="c" * 40,
        nar_hash="7" * 64,
        last_modified=None,
        store_path="/nix/store/x-source",
        inputs=(LockedInput("nixpkgs", "github", "github:o/r/" + "d" * 40, "d" * 40, "8" * 64),),
    )
    return SourceInfo(
        "git+file:///r?rev=" + "c" * 40, "git+file:///r", "c" * 40, "", False, (), meta
    )


def _by_models(stmt: Statement, check: BuiltCheck) -> bytes:
    """What the statement dumped to when each closure entry was a model and pydantic dumped
    the whole statement, predicate included."""
    models = []
    for info in sorted(check.closure, key=lambda p: p.path):
        notes: dict[str, Any] = {
            "nixStorePath": info.path,
            "kind": "derivation" if info.path.endswith(".drv") else "source",
        }
        if info.path in check.fixed_output_drvs:
            notes["fixedOutput"] = True
        models.append(
            ResourceDescriptor(name=info.path, digest={"sha256": info.nar_hash}, annotations=notes)
        )
    predicate = json.loads(json.dumps(stmt.predicate))
    deps = predicate["buildDefinition"]["resolvedDependencies"]
    deps[-len(models) :] = [m.model_dump(by_alias=True, exclude_none=True) for m in models]
    obj = Statement(
        subject=stmt.subject, predicate_type=stmt.predicate_type, predicate=predicate
    ).model_dump(by_alias=True, exclude_none=True)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_the_closure_written_as_plain_json_signs_the_same_bytes() -> None:
    check = _check()
    stmt = provenance_statement(check, _source(), {"version": "2.8.0", "sandbox": True})
    signed = stmt.dump_bytes()
    assert signed == _by_models(stmt, check)
    deps = json.loads(signed)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["name"] for d in deps] == ["source", "flake.lock:nixpkgs", DRV, FOD, SRC]
    assert deps[3]["annotations"] == {
        "fixedOutput": True,
        "kind": "derivation",
        "nixStorePath": FOD,
    }


def test_a_none_inside_the_predicate_is_kept_as_pydantic_kept_it() -> None:
    # exclude_none never reached into the predicate dict: dumping it as it is keeps that.
    stmt = Statement(
        subject=[], predicate_type="x", predicate={"a": None, "b": [None, {"c": None}]}
    )
    assert json.loads(stmt.dump_bytes())["predicate"] == {"a": None, "b": [None, {"c": None}]}
