"""What `provenance build` is asked and what it answers: `BuildRequest`, one `CheckResult`
per check, the `BuildReport` (its `as_json` is the `--json` output), and
`ChecksFailedError`, which carries the report when some checks failed.

Apart from the steps (pipeline.py, cache.py, checks.py) because every step and every
caller (the CLI, the example, the benchmarks, the ledger) shares these types, and they
import nothing but the error hierarchy. Import them from pipeline.py, as callers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.errors import BuildFailedError
from provenance.formats.keys import Signer
from provenance.formats.uris import BUILDER_ID

if TYPE_CHECKING:
    from provenance.doors.nixparse import FlakeMetadata

# How an output came to be trusted (internalParameters.outputCheck; realise.py decides):
BUILT = "built"  # we saw nix build it, sandboxed, here, in this run
REBUILT = "rebuilt-and-compared"  # it was already valid; nix --rebuild reproduced it bit for bit


@dataclass(frozen=True)
class Source:
    """What was evaluated: the repository, the ref, and the flake's metadata when the
    evaluation itself returned it (Nix.eval_pinned; else `nix flake metadata` is asked)."""

    top: Path
    ref: str
    commit: str
    subdir: str
    dirty_files: tuple[str, ...]
    metadata: FlakeMetadata | None = None


@dataclass(frozen=True)
class Builder:
    """Who builds and signs, as the statement says: `runDetails.builder.id`,
    `internalParameters.trustTier`, and more `internalParameters` (the attestation
    service records who asked and who it is: provenance/service/server.py).

    The default is a local build by whoever holds the key (docs/attestation-format.md).
    """

    id: str = BUILDER_ID
    tier: str = "local"
    recorded: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildRequest:
    flake_dir: Path
    signer: Signer
    checks: tuple[str, ...] | None = None
    output: Path | None = None
    force: bool = False
    allow_dirty: bool = False
    attach_note: bool = True
    verify_deps: bool = False  # `nix store verify` the dependency outputs and sources first
    builder: Builder = field(default_factory=Builder)
    closure: str = "auto"  # full: list every path; digest: a digest of them; auto: checks.py


@dataclass(frozen=True)
class CheckResult:
    name: str
    drv_path: str
    status: str  # "attested" | "cached" | "failed"
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # out -> {path, sha256}
    output_check: str | None = None
    log_sha256: str | None = None
    error: str | None = None
    tests: dict[str, object] | None = None  # test results, when the check left any
    via: str | None = None  # cache hit on an ancestor: the commit whose attestation was reused


@dataclass(frozen=True)
class BuildReport:
    commit: str
    dirty: bool
    system: str
    keyid: str
    checks: tuple[CheckResult, ...]
    bundle_path: Path | None
    note_attached: bool
    # The bundle's lines; the lines for this commit's note (the bundle less lines reused
    # from an ancestor) and the lines they superseded there. Not in `as_json`: the
    # attestation service hands them to its client, which writes them (service/client.py).
    lines: tuple[str, ...] = ()
    note_lines: tuple[str, ...] = ()
    superseded: tuple[str, ...] = ()

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "failed"]

    def as_json(self) -> dict[str, object]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "system": self.system,
            "keyid": self.keyid,
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "noteAttached": self.note_attached,
            "checks": [
                {
                    "name": c.name,
                    "drvPath": c.drv_path,
                    "status": c.status,
                    "outputs": c.outputs,
                    "outputCheck": c.output_check,
                    "logSha256": c.log_sha256,
                    **({"error": c.error} if c.error else {}),
                    **({"tests": c.tests} if c.tests else {}),
                    **({"reusedFrom": c.via} if c.via else {}),
                }
                for c in self.checks
            ],
        }


class ChecksFailedError(BuildFailedError):
    """Some checks failed; carries the full report so callers can still record the run."""

    def __init__(self, message: str, hint: str | None, report: BuildReport) -> None:
        super().__init__(message, hint)
        self.report = report
