"""The statements `build` signs are plain JSON (formats/plainjson.py: no pydantic on that
path); validated through the intoto models, which forbid unknown fields, and dumped by
them, they give exactly the bytes signed: the models stay their definition."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from provenance.attest import testreports
from provenance.attest import testresults as tr
from provenance.attest.statement import BuiltCheck, SourceInfo, provenance_statement
from provenance.doors.nix import FlakeMetadata, LockedInput, PathInfo
from provenance.formats import intoto
from provenance.formats.intoto import Provenance, ResourceDescriptor, Statement
from provenance.formats.plainjson import PlainStatement

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


def _through_models(stmt: PlainStatement, predicate_model: Any) -> bytes:
    """The statement validated through the intoto models (extra="forbid": no unknown or
    misspelt field, every type right) and dumped by them: the bytes they would sign."""
    obj = stmt.as_json()
    for s in obj["subject"]:
        assert (
            ResourceDescriptor.model_validate(s).model_dump(by_alias=True, exclude_none=True) == s
        )
    predicate = predicate_model.model_validate(obj["predicate"]).as_predicate()
    model = Statement.model_validate({**obj, "predicate": predicate})
    return model.dump_bytes()


def test_the_statement_written_as_plain_json_is_what_the_models_sign() -> None:
    check = _check()
    stmt = provenance_statement(check, _source(), {"version": "2.8.0", "sandbox": True})
    signed = stmt.dump_bytes()
    assert signed == _through_models(stmt, Provenance)
    deps = json.loads(signed)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["name"] for d in deps] == ["source", "flake.lock:nixpkgs", DRV, FOD, SRC]
    assert deps[3]["annotations"] == {
        "fixedOutput": True,
        "kind": "derivation",
        "nixStorePath": FOD,
    }


def test_a_digest_listing_is_what_the_models_sign() -> None:
    check = replace(_check(), closure_listing="digest")
    stmt = provenance_statement(check, _source(), {"version": "2.8.0"})
    assert stmt.dump_bytes() == _through_models(stmt, Provenance)


def test_the_test_result_statement_is_what_the_models_sign() -> None:
    results = tr.TestResults("junit", (), 3, 1, 1, "/nix/store/o-check/report.xml", "9" * 64)
    listed = replace(
        results, tests=(testreports.TestCase("a", "passed"), testreports.TestCase("b", "failed"))
    )
    for r in (results, listed):
        subject = [{"name": "/nix/store/o-check", "digest": {"sha256": "4" * 64}}]
        drv = tr.drv_descriptor(DRV, "1" * 64, "unit", "checks.x86_64-linux.unit")
        src = {"name": "source", "digest": {"sha256": "7" * 64, "gitCommit": "c" * 40}}
        stmt = tr.statement(r, subject, drv, src)
        assert stmt.dump_bytes() == _through_models(stmt, intoto.TestResult)


def test_a_none_inside_the_predicate_is_kept_as_pydantic_kept_it() -> None:
    # exclude_none never reached into the predicate dict: dumping it as it is keeps that.
    stmt = Statement(
        subject=[], predicate_type="x", predicate={"a": None, "b": [None, {"c": None}]}
    )
    assert json.loads(stmt.dump_bytes())["predicate"] == {"a": None, "b": [None, {"c": None}]}
