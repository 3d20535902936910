"""The `Summary` value and how it is counted from ledger entries (`summarize`).

Pure computation over already-verified entries: per-check statistics (`CheckStats`),
one `RunPoint` per run for the plots, and totals by command, actor and trust tier.
Loading a ledger is `summary`'s; rendering is `render` (text, Markdown) and `html`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.audit.chain import ChainReport
from provenance.audit.models import CheckRecord, Entry
from provenance.audit.views import (
    BranchView,
    CommitView,
    branch_views,
    commit_views,
    is_cache_hit,
    recent_commits,
)
from provenance.audit.vocab import FAILING, PASSING, RATED_PASS

TIERS = ("local", "ci", "reproduced")
RECENT = 20


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)  # 3.11 reads the trailing Z


@dataclass
class CheckStats:
    """One check's results. Dirty-tree builds are counted apart (`dirty`) and nowhere else:
    they prove nothing about a commit. Pass rates count fresh passes only (`passed`); a
    cache hit or a gate's reuse (`repeated`) repeats an earlier result."""

    name: str
    runs: int = 0
    passed: int = 0
    failed: int = 0
    repeated: int = 0  # cached, reused: passes, not counted again in the pass rate
    other: int = 0  # skipped, unverified: neither a pass nor a failure
    dirty: int = 0  # results of dirty-tree builds
    last_result: str = ""
    last_time: str = ""
    tiers: Counter[str] = field(default_factory=Counter)  # passing results per tier

    @property
    def pass_rate(self) -> float | None:
        decided = self.passed + self.failed
        return self.passed / decided if decided else None


@dataclass(frozen=True)
class RunPoint:
    """One run, for the plots: when, how many of its checks passed, how long it took."""

    seq: int
    time: str
    command: str
    pass_rate: float | None
    duration_ms: int | None
    cache_hit: bool = False  # a build that built nothing: kept apart in the duration plot


@dataclass(frozen=True)
class Summary:
    label: str
    chain: ChainReport | None  # None for an aggregate of several ledgers
    runs: int
    ok_runs: int
    by_command: dict[str, int]
    first_time: str | None
    last_time: str | None
    actors: tuple[str, ...]
    repos: tuple[str, ...]
    commits: int
    results: int  # check results recorded
    checks: tuple[CheckStats, ...]
    tiers: dict[str, int]  # passing check results per tier
    recent: tuple[Entry, ...]
    points: tuple[RunPoint, ...]
    parts: tuple[Summary, ...] = ()  # per-ledger summaries of an aggregate
    branches: tuple[BranchView, ...] = ()  # is main proven, and by whom (views.py)
    commit_views: tuple[CommitView, ...] = ()  # the most recently recorded commits
    dirty_runs: int = 0  # builds of uncommitted changes: shown, never counted as proof

    @property
    def pass_rate(self) -> float | None:
        passed = sum(c.passed for c in self.checks)
        decided = passed + sum(c.failed for c in self.checks)
        return passed / decided if decided else None

    def as_json(self) -> dict[str, Any]:
        return {
            "ledger": self.label,
            "chain": self.chain.as_json() if self.chain else None,
            "runs": self.runs,
            "okRuns": self.ok_runs,
            "byCommand": self.by_command,
            "firstTime": self.first_time,
            "lastTime": self.last_time,
            "actors": list(self.actors),
            "repos": list(self.repos),
            "commits": self.commits,
            "dirtyRuns": self.dirty_runs,
            "results": self.results,
            "passRate": self.pass_rate,
            "tiers": self.tiers,
            "checks": [
                {
                    "name": c.name,
                    "runs": c.runs,
                    "passed": c.passed,
                    "failed": c.failed,
                    "repeated": c.repeated,
                    "dirty": c.dirty,
                    "passRate": c.pass_rate,
                    "lastResult": c.last_result,
                    "lastTime": c.last_time,
                    "tiers": dict(c.tiers),
                }
                for c in self.checks
            ],
            "parts": [p.as_json() for p in self.parts],
            "branches": [b.as_json() for b in self.branches],
            "recentCommits": [c.as_json() for c in self.commit_views],
        }


def _run_rate(checks: Iterable[CheckRecord]) -> float | None:
    results = [c.result for c in checks]
    passed = sum(r in RATED_PASS for r in results)
    decided = passed + sum(r in FAILING for r in results)
    return passed / decided if decided else None


def summarize(
    entries: Sequence[Entry],
    label: str,
    chain: ChainReport | None = None,
    parts: Sequence[Summary] = (),
) -> Summary:
    stats: dict[str, CheckStats] = {}
    tiers: Counter[str] = Counter()
    results = 0
    for e in entries:
        for c in e.checks:
            results += 1
            s = stats.setdefault(c.name, CheckStats(c.name))
            s.runs += 1
            if e.dirty:
                s.dirty += 1
                continue  # neither a pass, a failure nor the latest result of the check
            if c.result in PASSING:
                s.passed += c.result in RATED_PASS
                s.repeated += c.result not in RATED_PASS
                s.tiers[c.tier] += 1
                tiers[c.tier] += 1
            elif c.result in FAILING:
                s.failed += 1
            else:
                s.other += 1
            if e.time >= s.last_time:
                s.last_result, s.last_time = c.result, e.time
    ordered = sorted(entries, key=lambda e: (e.time, e.seq))
    views = commit_views(entries)
    return Summary(
        label=label,
        chain=chain,
        runs=len(entries),
        ok_runs=sum(e.ok for e in entries),
        by_command=dict(sorted(Counter(e.command for e in entries).items())),
        first_time=ordered[0].time if ordered else None,
        last_time=ordered[-1].time if ordered else None,
        actors=tuple(sorted({f"{e.actor.user}@{e.actor.host}" for e in entries})),
        repos=_repos(entries),
        commits=len({e.commit for e in entries if e.commit}),
        results=results,
        checks=tuple(stats[n] for n in sorted(stats)),
        tiers={t: tiers.get(t, 0) for t in TIERS},
        recent=tuple(reversed(ordered[-RECENT:])),
        points=tuple(
            RunPoint(e.seq, e.time, e.command, _run_rate(e.checks), e.duration_ms, is_cache_hit(e))
            for e in ordered
            if not e.dirty
        ),
        parts=tuple(parts),
        dirty_runs=sum(bool(e.dirty) for e in entries),
        branches=tuple(branch_views(entries, views)),
        commit_views=tuple(recent_commits(views)),
    )


def _repos(entries: Sequence[Entry]) -> tuple[str, ...]:
    """Each repository once, by its newest name: a repository recorded by its path until
    a remote was added, then by the remote's URL, is one repository (`repoPath`)."""
    newest: dict[tuple[str, str], tuple[str, str]] = {}  # (host, path) -> (time, name)
    for e in entries:
        if e.repo_path:
            where = (e.actor.host, e.repo_path)
            if where not in newest or e.time >= newest[where][0]:
                newest[where] = (e.time, e.repo)
    # An older entry has no repoPath; its `repo` was the path when it had no remote.
    return tuple(
        sorted(
            {newest.get((e.actor.host, e.repo_path or e.repo), ("", e.repo))[1] for e in entries}
        )
    )
