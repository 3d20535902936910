"""`provenance approve`: a reviewer signs that they accept a commit's deltas against its base.

The deltas and protected-path changes are computed here, exactly as the gate computes
them (compare.py), and every one of them is listed in the signed statement
(approval.py), which is unioned into the commit's note. So what a reviewer approves is
what they were shown; a later commit that weakens something else is not covered.

Refused: a comparison in doubt (the base's tests are not attested, say: there is nothing
definite to approve) and a commit with nothing to approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.doors.git import NOTES_REF, Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH
from provenance.errors import RefusedError, UsageError
from provenance.formats import dsse
from provenance.formats.keys import Signer
from provenance.formats.uris import flake_subdir, git_file_flake
from provenance.policy.trust import TrustPolicy
from provenance.review import approval
from provenance.review.compare import Review, Scope, compare, resolve_base
from provenance.review.policy import ReviewPolicy, from_commit

MAX_REASON = approval.MAX_REASON


@dataclass(frozen=True)
class ApproveRequest:
    flake_dir: Path
    signer: Signer
    trust: TrustPolicy  # whose test results count when the deltas are computed
    base: str
    rev: str = "HEAD"
    reason: str = ""
    review_policy: ReviewPolicy | None = None  # None: the base's provenance.toml
    attach_note: bool = True


@dataclass(frozen=True)
class ApproveReport:
    commit: str
    review: Review
    line: str  # the signed envelope, one JSON line
    note_attached: bool
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "review": self.review.as_json(),
            "envelope": self.line,
            "noteAttached": self.note_attached,
            "warnings": list(self.warnings),
        }


def approve(req: ApproveRequest, nix: Nix) -> ApproveReport:
    if len(req.reason) > MAX_REASON:
        msg = f"--reason is {len(req.reason)} characters, over the {MAX_REASON} limit"
        raise UsageError(msg)
    flake_dir = req.flake_dir.resolve()
    git = Git(flake_dir)
    top = git.toplevel().resolve()
    subdir = flake_subdir(flake_dir, top)
    commit = git.rev_parse(req.rev)
    base = resolve_base(git, req.base, commit, trusted=False)
    policy = req.review_policy or from_commit(git, base.commit, subdir, base.ref)
    system = current_system()
    evaluated = nix.eval_checks(git_file_flake(str(top), rev=commit, subdir=subdir), system, None)
    scope = Scope(git, top, subdir, commit, system, evaluated, None, DEFAULT_SEARCH_DEPTH)
    review = compare(scope, base, nix, req.trust, policy)
    if review.doubts:
        msg = f"cannot approve what is not known: {review.doubts[0]}"
        raise RefusedError(msg, "attest the base and the change first (`provenance build`)")
    if not review.deltas and not review.paths:
        msg = f"nothing to approve: {review.reason()}"
        raise UsageError(msg)
    warnings = []
    keyid = req.signer.keyid
    if policy.reviewer_name(keyid) is None:
        warnings.append(
            f"this key is not a reviewer in {policy.source}: the gate will not count the approval"
        )
    if any(k.key.keyid == keyid for k in req.trust.keys):
        warnings.append(
            "this key is also a trusted build key: the gate will not count the approval"
        )
    stmt = approval.statement(
        commit=commit,
        base_ref=base.ref,
        base_commit=base.commit,
        merge_base=base.merge_base,
        flake_dir=subdir,
        reason=req.reason,
        deltas=list(review.deltas),
        paths=list(review.paths),
    )
    line = dsse.sign(stmt.dump_bytes(), [req.signer]).to_json()
    if req.attach_note:
        git.add_note_lines(commit, [line], NOTES_REF)
    return ApproveReport(commit, review, line, req.attach_note, tuple(warnings))
