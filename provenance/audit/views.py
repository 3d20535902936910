"""Per-commit and per-branch views of the ledger: is main proven, and by whom?

A check is proven at a commit when its latest decided result there (by time) is a pass:
`passed` or `cached` by `build`, `passed` by `verify`, `reused` by `gate`; `failed` and
`error` are failures; `skipped` decides nothing. A commit is proven when every check
recorded for it is. "By whom" names the actors of passing `build` and `verify` results
(user@host and the signing key), with their tier; a gate only reuses someone's proof, so
it never counts as a prover. A branch's view is that of the newest commit recorded on it
(entries carry `branch` since schema v1's optional field; older ones have none).

What the ledger cannot say: whether the branch moved since (the ledger records runs, not
refs), nor whether the attestations behind a run still verify (`provenance show` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provenance.audit.models import Entry
from provenance.audit.vocab import FAILING, PASSING, TIER_RANK

RECENT_COMMITS = 20


@dataclass(frozen=True)
class Prover:
    """Who recorded a passing build or verify result for a commit."""

    actor: str  # user@host
    keyid: str | None
    command: str
    tier: str

    def label(self, *, actor: bool = True) -> str:
        """`user@host key abcd… (build, local)`; without `actor`, the key alone (Markdown
        for PR comments names keys, not people: docs/audit.md)."""
        key = f"key {self.keyid[:12]}" if self.keyid else ""
        who = " ".join(x for x in ((self.actor if actor else ""), key) if x) or "someone"
        return f"{who} ({self.command}, {self.tier})"


@dataclass(frozen=True)
class CommitView:
    commit: str
    branches: tuple[str, ...]
    last_time: str
    checks: dict[str, str]  # check -> latest decided result
    prover_list: tuple[Prover, ...]
    tier: str  # the highest tier of a passing result
    builds: int  # build runs that built something
    cache_hits: int  # build runs that built nothing (every check already attested)

    @property
    def proven(self) -> bool:
        return bool(self.checks) and all(r in PASSING for r in self.checks.values())

    @property
    def provers(self) -> tuple[str, ...]:
        return tuple(p.label() for p in self.prover_list)

    def as_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "branches": list(self.branches),
            "lastTime": self.last_time,
            "proven": self.proven,
            "checks": self.checks,
            "provenBy": list(self.provers),
            "tier": self.tier,
            "builds": self.builds,
            "cacheHits": self.cache_hits,
        }


@dataclass(frozen=True)
class BranchView:
    branch: str
    head: CommitView  # the newest commit recorded on the branch

    def as_json(self) -> dict[str, Any]:
        return {"branch": self.branch, **self.head.as_json()}


def is_cache_hit(e: Entry) -> bool:
    """A build run that built nothing: every check it recorded was already attested."""
    return e.command == "build" and bool(e.checks) and all(c.result == "cached" for c in e.checks)


def _prover(e: Entry) -> Prover:
    return Prover(f"{e.actor.user}@{e.actor.host}", e.actor.keyid, e.command, e.tier)


def commit_views(entries: Sequence[Entry]) -> dict[str, CommitView]:
    """One view per recorded commit (entries in any order)."""
    # A dirty-tree build proves nothing about its commit: it is left out here as everywhere.
    ordered = sorted(
        (e for e in entries if e.commit and not e.dirty), key=lambda e: (e.time, e.seq)
    )
    decided: dict[str, dict[str, str]] = {}
    provers: dict[str, dict[Prover, None]] = {}
    tiers: dict[str, str] = {}
    branches: dict[str, dict[str, None]] = {}
    last: dict[str, str] = {}
    builds: dict[str, int] = {}
    hits: dict[str, int] = {}
    for e in ordered:
        c = e.commit or ""
        last[c] = e.time
        if e.branch:
            branches.setdefault(c, {})[e.branch] = None
        if e.command == "build":
            counter = hits if is_cache_hit(e) else builds
            counter[c] = counter.get(c, 0) + 1
        for r in e.checks:
            if r.result in PASSING or r.result in FAILING:
                decided.setdefault(c, {})[r.name] = r.result
            if r.result in PASSING:
                if TIER_RANK[r.tier] >= TIER_RANK.get(tiers.get(c, "local"), 0):
                    tiers[c] = r.tier
                if e.command in ("build", "verify"):
                    provers.setdefault(c, {})[_prover(e)] = None
    return {
        c: CommitView(
            commit=c,
            branches=tuple(sorted(branches.get(c, {}))),
            last_time=last[c],
            checks=dict(sorted(decided.get(c, {}).items())),
            prover_list=tuple(provers.get(c, {})),
            tier=tiers.get(c, "-"),
            builds=builds.get(c, 0),
            cache_hits=hits.get(c, 0),
        )
        for c in last
    }


def branch_views(entries: Sequence[Entry], commits: dict[str, CommitView]) -> list[BranchView]:
    """Per branch, the newest commit recorded on it; `main` and `master` first."""
    newest: dict[str, tuple[str, int, str]] = {}
    for e in entries:
        if e.branch and e.commit and not e.dirty:
            seen = newest.get(e.branch)
            if seen is None or (e.time, e.seq) > seen[:2]:
                newest[e.branch] = (e.time, e.seq, e.commit)
    order = sorted(newest, key=lambda b: (b not in ("main", "master"), b))
    return [BranchView(b, commits[newest[b][2]]) for b in order]


def recent_commits(commits: dict[str, CommitView]) -> list[CommitView]:
    return sorted(commits.values(), key=lambda v: v.last_time, reverse=True)[:RECENT_COMMITS]
