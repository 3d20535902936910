"""`--base REF`: what a revision changed in its tests and protected paths against the base,
and which of those changes trusted reviewers approved. Shared by gate, verify, show and
approve; the answer is one value, `Review`.

1. The base is REF's commit; the comparison is with the merge base of REV and REF (what
   the change started from). The gate resolves REF as a trusted ref (trusted_ref.py),
   the others as any revision.
2. The checks are evaluated at the merge base (one `nix eval`). A check the base has and
   REV lacks is a `removed-check`. A check with the same drvPath on both sides has the
   same tests by construction. For the others, each side's tests are the trusted
   test-result statements for its drvPath in the notes of its history (results.py;
   the base's by drvPath, else by attribute on a statement made at the merge base), and
   deltas.compare_tests lists the weakenings.
3. Protected paths (policy.py) changed between the merge base and REV (protected.py).
4. Approvals (approval.py) on REV or its searched ancestors, signed by a reviewer key of
   the base's policy that is not also a build key, count for exactly the items they list.

Fail safe: whatever cannot be known (the base does not evaluate, a side's tests are not
attested, a trusted line does not parse) is a doubt, and a doubt is never approved away:
`Review.ok` is false and the reason says what is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.doors.git import Git
from provenance.doors.nix import Nix
from provenance.doors.notes import history_notes
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import AttestationError, ProvenanceError, UsageError
from provenance.formats.uris import git_file_flake
from provenance.policy import trusted_ref
from provenance.policy.trust import TrustPolicy
from provenance.review import approval, results
from provenance.review.deltas import Delta, compare_tests, removed_check
from provenance.review.policy import ReviewPolicy
from provenance.review.protected import PathChange, protected_changes
from provenance.review.results import TestSet

SHOWN = 4  # items named in a one-line reason


def _short(commit: str) -> str:
    return commit[:12]


@dataclass(frozen=True)
class Base:
    ref: str  # as resolved (a full ref name for the gate)
    commit: str  # what the ref points at
    merge_base: str  # the merge base of REV and the ref: what is compared with


def resolve_base(git: Git, name: str, rev: str, *, trusted: bool) -> Base:
    """The base REF stands for, and its merge base with `rev` (a commit id)."""
    if trusted:
        ref = trusted_ref.resolve(git, name)
        full, tip = ref.name, ref.commit
    else:
        full, tip = name, git.rev_parse(name)
    merge_base = git.merge_base(rev, tip)
    if merge_base is None:
        msg = f"{_short(rev)} and the base {full} share no history"
        raise UsageError(msg, "pass the branch the change is headed for with --base")
    return Base(full, tip, merge_base)


@dataclass(frozen=True)
class CheckTests:
    """One check on both sides: drvPaths and the tests the trusted notes give each."""

    name: str
    base_drv: str
    drv: str
    base: TestSet | None  # None: not attested (a doubt) or not needed (same drvPath)
    change: TestSet | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseDrvPath": self.base_drv,
            "drvPath": self.drv,
            "sameDrvPath": self.base_drv == self.drv,
            "base": self.base.as_json() if self.base else None,
            "change": self.change.as_json() if self.change else None,
        }


@dataclass(frozen=True)
class Review:
    base: Base
    policy: ReviewPolicy
    deltas: tuple[Delta, ...] = ()
    paths: tuple[PathChange, ...] = ()
    doubts: tuple[str, ...] = ()
    approvers: Mapping[tuple[Any, ...], tuple[str, ...]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # approvals that do not count, and why
    tests: tuple[CheckTests, ...] = ()

    def approved_by(self, item: Delta | PathChange) -> tuple[str, ...]:
        return self.approvers.get(item.key(), ())

    def approved(self, item: Delta | PathChange) -> bool:
        return len(self.approved_by(item)) >= self.policy.approvals

    def blocks(self, item: Delta | PathChange) -> bool:
        relevant = isinstance(item, PathChange) or item.kind in self.policy.run_on
        return relevant and not self.approved(item)

    @property
    def items(self) -> list[Delta | PathChange]:
        return [*self.deltas, *self.paths]

    @property
    def blocking(self) -> list[Delta | PathChange]:
        return [i for i in self.items if self.blocks(i)]

    @property
    def ok(self) -> bool:
        return not self.doubts and not self.blocking

    def reason(self) -> str:
        against = f"against {self.base.ref} (merge base {_short(self.base.merge_base)})"
        if self.doubts:
            more = f" (+{len(self.doubts) - 1} more)" if len(self.doubts) > 1 else ""
            return f"in doubt {against}: {self.doubts[0]}{more}"
        deltas = [i for i in self.blocking if isinstance(i, Delta)]
        paths = [i for i in self.blocking if isinstance(i, PathChange)]
        parts = []
        if deltas:
            parts.append("tests weakened " + _named(deltas))
        if paths:
            parts.append("protected paths changed " + _named(paths))
        if parts:
            return f"{'; '.join(parts)} {against}, not approved by a trusted reviewer"
        approved = [i for i in self.items if self.approved(i)]
        if approved:
            names = sorted({n for i in approved for n in self.approved_by(i)})
            return f"{len(approved)} change(s) {against} approved by {', '.join(names)}"
        return f"no test deltas or protected-path changes {against}"

    def as_json(self) -> dict[str, Any]:
        def item(i: Delta | PathChange) -> dict[str, Any]:
            return {
                **i.as_json(),
                "blocks": self.blocks(i),
                "approvedBy": list(self.approved_by(i)),
            }

        return {
            "base": {
                "ref": self.base.ref,
                "commit": self.base.commit,
                "mergeBase": self.base.merge_base,
            },
            "policy": self.policy.as_json(),
            "ok": self.ok,
            "reason": self.reason(),
            "doubts": list(self.doubts),
            "deltas": [item(d) for d in self.deltas],
            "protectedPaths": [{**item(p), "pattern": p.pattern} for p in self.paths],
            "ignoredApprovals": list(self.ignored),
            "checks": [t.as_json() for t in self.tests],
        }


def _named(items: list[Delta] | list[PathChange]) -> str:
    shown = ", ".join(i.describe() for i in items[:SHOWN])
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return f"({shown}{more})"


@dataclass(frozen=True)
class Scope:
    """Where the comparison runs: the repository, the flake in it, REV and what it evaluates to."""

    git: Git
    top: Path
    subdir: str
    rev: str
    system: str
    evaluated: Mapping[str, EvaluatedCheck]  # REV's checks (those required, or all)
    required: tuple[str, ...] | None = None  # None: every check is compared
    depth: int = 50


def compare(scope: Scope, base: Base, nix: Nix, trust: TrustPolicy, policy: ReviewPolicy) -> Review:
    git, mb = scope.git, base.merge_base
    doubts: list[str] = []
    window, notes = history_notes(git, scope.rev, scope.depth)
    base_eval: Mapping[str, EvaluatedCheck] | None = scope.evaluated
    if mb != scope.rev:
        _, base_notes = history_notes(git, mb, scope.depth)
        notes = [*notes, *base_notes]
        try:
            ref = git_file_flake(str(scope.top), rev=mb, subdir=scope.subdir)
            base_eval = nix.eval_checks(ref, scope.system, None)
        except ProvenanceError as e:
            doubts.append(f"the checks do not evaluate at the merge base: {e.message}")
            base_eval = None
    idx = results.read(notes, trust.active_keys(), policy.active_reviewers())
    if idx.unreadable:
        doubts.append(f"{idx.unreadable} trusted note line(s) cannot be read")
    deltas: list[Delta] = []
    tests: list[CheckTests] = []
    for name, b in sorted((base_eval or {}).items()):
        if scope.required is not None and name not in scope.required:
            continue
        c = scope.evaluated.get(name)
        if c is None:
            deltas.append(removed_check(name))
            continue
        if c.drv_path == b.drv_path:
            tests.append(CheckTests(name, b.drv_path, c.drv_path, None, None))
            continue
        before = _tests(idx, b.drv_path, (f"checks.{scope.system}.{name}", mb), results.best)
        after = _tests(idx, c.drv_path, None, results.worst)
        if before is None:
            doubts.append(
                f"{name}: no trusted attestation of the base's tests (drvPath "
                f"{b.drv_path.rsplit('/', 1)[-1]} at {_short(mb)}), so what the change did to them is unknown"
            )
        if after is None:
            doubts.append(f"{name}: no trusted attestation of the change's tests")
        if before is not None and after is not None:
            deltas += compare_tests(name, before, after)
        tests.append(CheckTests(name, b.drv_path, c.drv_path, before, after))
    paths = (
        protected_changes(git, mb, scope.rev, scope.subdir, policy.protected)
        if mb != scope.rev
        else []
    )
    approvers, ignored = _approvals(idx, set(window), scope.subdir, trust, policy)
    return Review(
        base,
        policy,
        tuple(sorted(deltas)),
        tuple(paths),
        tuple(doubts),
        approvers,
        tuple(ignored),
        tuple(tests),
    )


def _tests(
    idx: results.Index, drv: str, by_attribute: tuple[str, str] | None, combine: Any
) -> TestSet | None:
    runs = idx.runs(drv) or (idx.by_attribute.get(by_attribute, []) if by_attribute else [])
    if runs:
        return combine(runs)  # type: ignore[no-any-return]
    return results.NONE_REPORTED if drv in idx.attested else None


def _approvals(
    idx: results.Index, window: set[str], subdir: str, trust: TrustPolicy, policy: ReviewPolicy
) -> tuple[dict[tuple[Any, ...], tuple[str, ...]], list[str]]:
    build_ids = {k.key.keyid for k in trust.keys}
    names: dict[tuple[Any, ...], set[str]] = {}
    ignored: list[str] = []
    for note_commit, stmt, keyids in idx.approvals:
        where = f"the approval on {_short(note_commit)}"
        try:
            a = approval.parse(stmt, note_commit, keyids)
        except AttestationError as e:
            ignored.append(f"{where} cannot be read: {e.message}")
            continue
        if a.commit != note_commit:
            ignored.append(f"{where} names another commit ({_short(a.commit)})")
            continue
        if a.commit not in window:
            continue  # about the base's history, not this revision's
        if a.flake_dir != subdir:
            ignored.append(f"{where} is for the flake in {a.flake_dir or '.'!r}")
            continue
        counted = set()
        for k in a.keyids:
            who = policy.reviewer_name(k) or k[:16]
            if k in build_ids:
                ignored.append(
                    f"{where} by {who} does not count: that key is also a trusted build key"
                )
            else:
                counted.add(who)
        for key in a.covers():
            names.setdefault(key, set()).update(counted)
    return {k: tuple(sorted(v)) for k, v in names.items() if v}, ignored
