"""Turn what was evaluated, built and hashed into an in-toto Statement (SLSA Provenance v1).

The mapping of Nix facts into SLSA is our published convention, documented field by
field in docs/attestation-format.md:

- subject[i]: one per output; name = the output's store path, digest.sha256 = hex
  SHA-256 of its NAR, annotations {nixOutput, nixStorePath}.
- externalParameters: {flake, attribute, check, system, drvPath, source}.
- internalParameters: the Nix environment the build ran in (nixenv.BuildEnvironment.record)
  and how each output was checked.
- resolvedDependencies: the source, each flake.lock input, then every .drv and source
  path of the build closure (digest = hex NAR SHA-256; FODs annotated); with
  `--closure digest`, only the check's .drv, its direct inputs and the FODs, and one
  `closure` entry whose digest covers the whole list (internalParameters.closureListing).
- byproducts: the build log's SHA-256, and that of the normalised log
  (provenance/lognorm.py), which two honest builds of the same drv share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provenance import __version__
from provenance.attest.report import Builder as BuilderIdentity
from provenance.doors.nix import FlakeMetadata, PathInfo
from provenance.formats.claims import CLOSURE_DIGEST
from provenance.formats.hashing import CLOSURE_DIGEST_V1, closure_digest
from provenance.formats.plainjson import JSON, PlainStatement, descriptor
from provenance.formats.uris import BUILD_TYPE, SLSA_PROVENANCE_V1, git_file_flake, local_path


@dataclass(frozen=True)
class SourceInfo:
    flake_ref: str  # what was evaluated, e.g. git+file:///repo?rev=...
    repo_url: str  # the repository, without rev (uris.git_file_flake: percent-encoded)
    commit: str
    subdir: str
    dirty: bool
    dirty_files: tuple[str, ...]
    metadata: FlakeMetadata


@dataclass(frozen=True)
class BuiltCheck:
    name: str
    attribute: str
    drv_path: str
    system: str
    outputs: dict[str, tuple[str, str]]  # output name -> (store path, nar sha256 hex)
    output_check: str
    log_sha256: str | None
    closure: list[PathInfo]
    dependency_check: str  # nixenv.DEPENDENCY_CHECKS (attest/checks.py: _check_dependencies)
    fixed_output_drvs: frozenset[str]
    started_on: str
    finished_on: str
    invocation_id: str
    log_normalised_sha256: str | None = None
    closure_listing: str = "full"  # claims.CLOSURE_LISTINGS: every entry, or their digest


def source_descriptor(src: SourceInfo) -> JSON:
    digest = {"sha256": src.metadata.nar_hash}
    if not src.dirty:
        digest["gitCommit"] = src.commit
    return descriptor(
        name="source",
        uri=src.flake_ref,
        digest=digest,
        annotations={
            "dirty": src.dirty,
            **({"dirtyFiles": list(src.dirty_files)} if src.dirty else {}),
        },
    )


def provenance_statement(
    check: BuiltCheck,
    src: SourceInfo,
    nix_environment: dict[str, Any],
    builder: BuilderIdentity | None = None,
) -> PlainStatement:
    subjects = [
        descriptor(
            name=path,
            digest={"sha256": nar},
            annotations={"nixOutput": out, "nixStorePath": path},
        )
        for out, (path, nar) in sorted(check.outputs.items())
    ]
    deps = [source_descriptor(src)]
    deps += [
        descriptor(
            name=f"flake.lock:{i.name}",
            uri=i.uri,
            digest={
                **({"sha256": i.nar_hash} if i.nar_hash else {}),
                **({"gitCommit": i.rev} if i.rev else {}),
            }
            or None,
            annotations={"flakeInput": i.name, "type": i.type},
        )
        for i in src.metadata.inputs
    ]

    external = {
        "flake": git_file_flake(local_path(src.repo_url), subdir=src.subdir),
        "attribute": check.attribute,
        "check": check.name,
        "system": check.system,
        "drvPath": check.drv_path,
        "source": {
            "gitCommit": src.commit,
            "narHash": src.metadata.nar_hash,
            "dirty": src.dirty,
            **({"dirtyFiles": list(src.dirty_files)} if src.dirty else {}),
        },
    }
    builder = builder or BuilderIdentity()
    internal = {
        **builder.recorded,
        "nix": nix_environment,
        "evaluation": {"pure": True, "ref": src.flake_ref},
        "outputCheck": check.output_check,
        "dependencyOutputs": check.dependency_check,
        "trustTier": builder.tier,
        "slsaBuildLevel": 1,
    }
    byproducts = []
    if check.log_sha256:
        byproducts.append(
            descriptor(
                name="build.log", digest={"sha256": check.log_sha256}, media_type="text/plain"
            )
        )
    if check.log_normalised_sha256:
        byproducts.append(
            descriptor(
                name="build.log.normalised",
                digest={"sha256": check.log_normalised_sha256},
                media_type="text/plain",
                annotations={"normalisation": "provenance/lognorm.py v1"},
            )
        )
    # Plain JSON in the models' shape (formats/plainjson.py: no pydantic on this path).
    body: JSON = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": builder.id,
                "version": {"provenance": __version__, "nix": str(nix_environment["version"])},
            },
            "metadata": {
                "invocationId": check.invocation_id,
                "startedOn": check.started_on,
                "finishedOn": check.finished_on,
            },
            "byproducts": byproducts,
        },
    }
    # The closure, likewise: one model per entry cost seconds at 100,000 entries.
    if check.closure_listing == CLOSURE_DIGEST:
        body["buildDefinition"]["internalParameters"]["closureListing"] = CLOSURE_DIGEST
        entries = _digest_listing(check)
    else:
        entries = closure_entries(check.closure, check.fixed_output_drvs)
    body["buildDefinition"]["resolvedDependencies"] += entries
    return PlainStatement(subjects, SLSA_PROVENANCE_V1, body)


def _digest_listing(check: BuiltCheck) -> list[dict[str, Any]]:
    """`--closure digest`: the check's .drv, what it builds on directly and every
    fixed-output derivation (the only builds that reach the network) as entries, and one
    entry whose digest stands for the whole list (hashing.closure_digest)."""
    own = next((p for p in check.closure if p.path == check.drv_path), None)
    listed = {check.drv_path, *(own.references if own else ()), *check.fixed_output_drvs}
    digest = closure_digest((p.path, p.nar_hash) for p in check.closure)
    whole = {
        "annotations": {
            "entries": len(check.closure),
            "format": CLOSURE_DIGEST_V1,
            "kind": "closure",
        },
        "digest": {"sha256": digest},
        "name": "closure",
    }
    shown = [p for p in check.closure if p.path in listed]
    return [*closure_entries(shown, check.fixed_output_drvs), whole]


def closure_entries(closure: list[PathInfo], fods: frozenset[str]) -> list[dict[str, Any]]:
    """One resolvedDependencies entry per .drv and source of the closure, by path."""
    entries = []
    for info in sorted(closure, key=lambda p: p.path):
        kind = "derivation" if info.path.endswith(".drv") else "source"
        notes: dict[str, Any] = {"kind": kind, "nixStorePath": info.path}
        if info.path in fods:
            notes["fixedOutput"] = True  # the only builds that reach the network
        entries.append(
            {"annotations": notes, "digest": {"sha256": info.nar_hash}, "name": info.path}
        )
    return entries
