"""What `provenance show` found, as values, and their JSON (docs/show.md: schema
`provenance-show/v1`; fields are only ever added, never renamed or removed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.policy.trust import TrustPolicy
from provenance.review.approval import Approval
from provenance.review.compare import Review
from provenance.review.policy import ReviewPolicy
from provenance.review.results import TestSet

SCHEMA = "provenance-show/v1"


@dataclass(frozen=True)
class Attested:
    """One trusted signer of a provenance statement for the check's exact drvPath."""

    signer: str  # the policy's name for the key
    keyid: str
    tier: str  # internalParameters.trustTier: local (a developer's or agent's machine)
    commit: str  # the commit it was made on
    reused: bool  # made on an ancestor, reused here (same drvPath, same definition)
    output_check: str  # built | rebuilt-and-compared
    problem: str | None = None  # why it does not count, or None when it does

    def as_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "keyid": self.keyid,
            "tier": self.tier,
            "commit": self.commit,
            "reusedFrom": self.commit if self.reused else None,
            "outputCheck": self.output_check,
            "counts": self.problem is None,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Verified:
    """A verification summary (VSA) a trusted key signed for exactly the check's outputs."""

    verifier: str
    keyid: str
    result: str  # PASSED | FAILED
    levels: tuple[str, ...]
    time: str
    commit: str  # the note it is on

    @property
    def reproduced(self) -> bool:
        return "PROVENANCE_REPRODUCED" in self.levels

    def as_json(self) -> dict[str, Any]:
        return {
            "verifier": self.verifier,
            "keyid": self.keyid,
            "result": self.result,
            "levels": list(self.levels),
            "reproduced": self.reproduced,
            "timeVerified": self.time,
            "commit": self.commit,
        }


@dataclass(frozen=True)
class CheckFacts:
    name: str
    drv_path: str
    outputs: dict[str, str]  # output name -> store path
    digests: dict[str, str | None]  # output name -> the sha256 the counted statements agree on
    proven: bool
    reason: str
    attestations: tuple[Attested, ...] = ()
    tests: TestSet | None = None
    test_result: str | None = None  # PASSED | WARNED | FAILED (the worst trusted one)
    verifications: tuple[Verified, ...] = ()
    other_drv_paths: int = 0  # statements for this check but another drvPath (older inputs)

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(sorted({a.signer for a in self.attestations if a.problem is None}))

    @property
    def reused_from(self) -> tuple[str, ...]:
        return tuple(
            sorted({a.commit for a in self.attestations if a.reused and a.problem is None})
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "drvPath": self.drv_path,
            "outputs": {
                o: {"path": p, "sha256": self.digests.get(o)}
                for o, p in sorted(self.outputs.items())
            },
            "proven": self.proven,
            "reason": self.reason,
            "signers": list(self.signers),
            "reusedFrom": list(self.reused_from),
            "attestations": [a.as_json() for a in self.attestations],
            "tests": None
            if self.tests is None
            else {"result": self.test_result, **self.tests.as_json()},
            "verifications": [v.as_json() for v in self.verifications],
            "otherDrvPaths": self.other_drv_paths,
        }


@dataclass(frozen=True)
class ApprovalFacts:
    approval: Approval
    reviewers: tuple[str, ...]  # the [review.reviewers] names of its signers
    counts: bool  # about the commit it hangs on, this flake, no build key among its signers

    def as_json(self) -> dict[str, Any]:
        a = self.approval
        return {
            "commit": a.commit,
            "reviewers": list(self.reviewers),
            "counts": self.counts,
            "reason": a.reason,
            "approvedOn": a.approved_on,
            "base": {"ref": a.base_ref, "commit": a.base_commit, "mergeBase": a.merge_base},
            "deltas": [d.as_json() for d in a.deltas],
            "protectedPaths": [p.as_json() for p in a.paths],
        }


@dataclass(frozen=True)
class ShowReport:
    rev: str
    commit: str
    flake: str
    system: str
    trust: TrustPolicy
    reviewers: ReviewPolicy
    checks: tuple[CheckFacts, ...] = ()
    approvals: tuple[ApprovalFacts, ...] = ()
    untrusted_lines: int = 0
    untrusted: tuple[str, ...] = ()  # keyid hints of signers no policy key matches
    unreadable: int = 0
    review: Review | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def proven(self) -> bool:
        """Every check proven (and, with --base, nothing unapproved or unknown against it)."""
        checks_ok = bool(self.checks) and all(c.proven for c in self.checks)
        return checks_ok and (self.review is None or self.review.ok)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "rev": self.rev,
            "commit": self.commit,
            "flake": self.flake,
            "system": self.system,
            "proven": self.proven,
            "trust": {
                "source": self.trust.source,
                "threshold": self.trust.threshold,
                "keys": [k.name for k in self.trust.keys],
                "reviewers": [k.name for k in self.reviewers.reviewers],
            },
            "checks": [c.as_json() for c in self.checks],
            "approvals": [a.as_json() for a in self.approvals],
            "untrusted": {"lines": self.untrusted_lines, "keyids": list(self.untrusted)},
            "unreadableLines": self.unreadable,
            "review": self.review.as_json() if self.review else None,
        }
