"""The gate's question and its answer: `GateRequest`, and `GateReport` with one
`CheckVerdict` per required check.

The decision (`gate`) fills a `GateReport`; every rendering (`outputs`) is made from that
one value, so the GITHUB_OUTPUT lines, the step summary, the text and the JSON agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.doors.notes import DEFAULT_SEARCH_DEPTH
from provenance.policy.trust import TrustPolicy

if TYPE_CHECKING:  # loaded by gate.py only with --base: ~25 ms of every gate otherwise
    from provenance.review.compare import Review
    from provenance.review.policy import ReviewPolicy


@dataclass(frozen=True)
class GateRequest:
    flake_dir: Path
    rev: str = "HEAD"
    policy: TrustPolicy | None = None  # from --trusted-key or --policy (outside the tree)
    policy_ref: str | None = None  # or: read provenance.toml at this trusted ref
    required: tuple[str, ...] | None = None  # None: every check of the flake at REV
    remote: str | None = None  # None: `origin`, or the only remote
    fetch: bool = True
    search_depth: int = DEFAULT_SEARCH_DEPTH
    base: str | None = None  # compare tests and protected paths with this trusted ref
    review_policy: ReviewPolicy | None = None  # from --policy FILE; None: the base's own


@dataclass(frozen=True)
class CheckVerdict:
    name: str
    drv_path: str | None
    passed: bool
    reason: str
    commit: str | None = None  # the commit whose attestation counts (may be an ancestor)
    signers: tuple[str, ...] = ()
    # trustTier of each statement counted (`local` for `provenance build`): where the
    # proof was made, which the audit ledger records rather than where the gate ran.
    trust_tiers: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "drvPath": self.drv_path,
            "passed": self.passed,
            "reason": self.reason,
            "attestedCommit": self.commit,
            "signers": list(self.signers),
        }


@dataclass(frozen=True)
class GateReport:
    skip: bool
    reason: str  # one line
    rev: str
    commit: str | None
    checks: tuple[CheckVerdict, ...] = ()
    notes: str = ""  # where the notes came from
    trust: str = ""  # where the trust came from
    search_depth: int = DEFAULT_SEARCH_DEPTH
    warnings: tuple[str, ...] = ()
    review: Review | None = None  # with --base: the deltas against it (review/compare.py)
    errored: bool = False  # the gate failed safe on an error (skip is false for that reason)

    @property
    def reused(self) -> dict[str, str]:
        """Checks whose attestation came from an earlier commit: name -> that commit."""
        return {
            c.name: c.commit
            for c in self.checks
            if c.passed and c.commit and c.commit != self.commit
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "skip": self.skip,
            "reason": self.reason,
            "rev": self.rev,
            "commit": self.commit,
            "notes": self.notes,
            "trust": self.trust,
            "searchDepth": self.search_depth,
            "warnings": list(self.warnings),
            "checks": [c.as_json() for c in self.checks],
            "review": self.review.as_json() if self.review else None,
        }
