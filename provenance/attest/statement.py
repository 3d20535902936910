"""Turn what was evaluated, built and hashed into an in-toto Statement (SLSA Provenance v1).

The mapping of Nix facts into SLSA is our published convention, documented field by
field in docs/attestation-format.md:

- subject[i]: one per output; name = the output's store path, digest.sha256 = hex
  SHA-256 of its NAR, annotations {nixOutput, nixStorePath}.
- externalParameters: {flake, attribute, check, system, drvPath, source}.
- internalParameters: the Nix environment the build ran in (nixenv.BuildEnvironment.record)
  and how each output was checked.
- resolvedDependencies: the source, each flake.lock input, then every .drv and source
  path of the build closure (digest = hex NAR SHA-256; FODs annotated).
- byproducts: the build log's SHA-256, and that of the normalised log
  (provenance/lognorm.py), which two honest builds of the same drv share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provenance import __version__
from provenance.attest.report import Builder as BuilderIdentity
from provenance.doors.nix import FlakeMetadata, PathInfo
from provenance.formats.intoto import (
    BuildDefinition,
    Builder,
    BuildMetadata,
    Provenance,
    ResourceDescriptor,
    RunDetails,
    Statement,
)
from provenance.formats.uris import SLSA_PROVENANCE_V1, git_file_flake, local_path


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


def source_descriptor(src: SourceInfo) -> ResourceDescriptor:
    digest = {"sha256": src.metadata.nar_hash}
    if not src.dirty:
        digest["gitCommit"] = src.commit
    return ResourceDescriptor(
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
) -> Statement:
    subjects = [
        ResourceDescriptor(
            name=path,
            digest={"sha256": nar},
            annotations={"nixOutput": out, "nixStorePath": path},
        )
        for out, (path, nar) in sorted(check.outputs.items())
    ]
    deps = [source_descriptor(src)]
    deps += [
        ResourceDescriptor(
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
    for info in sorted(check.closure, key=lambda p: p.path):
        kind = "derivation" if info.path.endswith(".drv") else "source"
        notes: dict[str, Any] = {"nixStorePath": info.path, "kind": kind}
        if info.path in check.fixed_output_drvs:
            notes["fixedOutput"] = True  # the only builds that reach the network
        deps.append(
            ResourceDescriptor(name=info.path, digest={"sha256": info.nar_hash}, annotations=notes)
        )

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
            ResourceDescriptor(
                name="build.log", digest={"sha256": check.log_sha256}, media_type="text/plain"
            )
        )
    if check.log_normalised_sha256:
        byproducts.append(
            ResourceDescriptor(
                name="build.log.normalised",
                digest={"sha256": check.log_normalised_sha256},
                media_type="text/plain",
                annotations={"normalisation": "provenance/lognorm.py v1"},
            )
        )
    predicate = Provenance(
        build_definition=BuildDefinition(
            external_parameters=external,
            internal_parameters=internal,
            resolved_dependencies=deps,
        ),
        run_details=RunDetails(
            builder=Builder(
                id=builder.id,
                version={"provenance": __version__, "nix": str(nix_environment["version"])},
            ),
            metadata=BuildMetadata(
                invocation_id=check.invocation_id,
                started_on=check.started_on,
                finished_on=check.finished_on,
            ),
            byproducts=byproducts,
        ),
    )
    return Statement(
        subject=subjects, predicate_type=SLSA_PROVENANCE_V1, predicate=predicate.as_predicate()
    )
