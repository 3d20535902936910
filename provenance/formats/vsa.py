"""SLSA Verification Summary v1 statements: the signed verdict of `provenance verify`.

Spec: https://slsa.dev/spec/v1.0/verification_summary (predicateType
`https://slsa.dev/verification_summary/v1`). One statement per verified check:

- subject: the check's outputs (store path, hex NAR SHA-256), as in the provenance;
- resourceUri: `<flake>#<attribute>` at the attested commit;
- policy: the trust policy used (its URI and SHA-256, see policy.digest);
- inputAttestations: the envelope that was verified (SHA-256 of its exact JSONL line);
- verificationResult: PASSED or FAILED;
- verifiedLevels: `SLSA_BUILD_LEVEL_1` when the provenance is authentic and bound to the
  project (signed by a trusted key, same drvPath on re-evaluation, subjects = outputs),
  plus our own `PROVENANCE_DRV_BOUND` for that binding and `PROVENANCE_REPRODUCED` when
  an independent rebuild gave the same NAR hashes. Custom levels must not start with
  `SLSA_` (spec), hence the prefix. Nothing above build level 1 is ever claimed: the
  builder was a local machine.
- rebuildDependencies (ours, only after a rebuild): where the rebuild's dependencies came
  from, as Nix reported it: substituted (path and cache), built here, refused
  substitutes (path and why), unreachable caches, and the caches read. The attested
  derivation itself is never among them: it is always built.

docs/verify.md documents every field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from provenance import __version__
from provenance.formats.intoto import ResourceDescriptor, Statement

VSA_V1 = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://github.com/provenance-nix/provenance/blob/main/docs/verify.md#verifier-v1"
LEVEL_L1 = "SLSA_BUILD_LEVEL_1"
LEVEL_BOUND = "PROVENANCE_DRV_BOUND"
LEVEL_REPRODUCED = "PROVENANCE_REPRODUCED"


def summary_statement(
    *,
    subjects: dict[str, tuple[str, str]],  # store path -> (output name, hex sha256)
    resource_uri: str,
    policy_uri: str,
    policy_sha256: str,
    input_uri: str,
    input_sha256: str,
    passed: bool,
    levels: list[str],
    time_verified: dt.datetime | None = None,
    dependencies: dict[str, Any] | None = None,
) -> Statement:
    when = (time_verified or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    predicate = {
        "verifier": {"id": VERIFIER_ID, "version": {"provenance": __version__}},
        "timeVerified": when,
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri, "digest": {"sha256": policy_sha256}},
        "inputAttestations": [{"uri": input_uri, "digest": {"sha256": input_sha256}}],
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": levels,
        "slsaVersion": "1.0",
    }
    if dependencies is not None:
        predicate["rebuildDependencies"] = dependencies
    return Statement(
        subject=[
            ResourceDescriptor(
                name=path,
                digest={"sha256": digest},
                annotations={"nixOutput": out, "nixStorePath": path},
            )
            for path, (out, digest) in sorted(subjects.items())
        ],
        predicate_type=VSA_V1,
        predicate=predicate,
    )
