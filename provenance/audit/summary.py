"""Reading the audit ledger: summaries, Markdown, multi-repo roll-ups and a policy gate.

Everything here works on the *verified prefix* of a ledger: the entries before the first
break in the hash chain. Entries after a break are counted (`ChainReport.unverified`)
but never summarised or used to pass a policy, because nothing vouches for them.

Text and Markdown are built from one `Summary` value; the HTML page lives in
`report_html.py`. Ledger strings are untrusted: Markdown escapes them here.
Docs: docs/audit.md.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.audit.ledger import (
    FAILING,
    PASSING,
    TIER_RANK,
    ChainReport,
    default_path,
    verify_chain,
)
from provenance.audit.models import CheckRecord, Entry
from provenance.errors import PolicyViolation, UsageError

TIERS = ("local", "ci", "reproduced")
RECENT = 20


def ledger_path(ledger: Path | None, repo: Path | None = None) -> Path:
    """The ledger to read: --ledger, or the repository's `.provenance/ledger.jsonl`."""
    if ledger is not None:
        return ledger
    from provenance.doors.git import Git  # noqa: PLC0415 - only needed without --ledger

    return default_path(Git(repo or Path.cwd()).toplevel())


def resolve(path: Path) -> Path:
    """A ledger file, or a repository directory holding `.provenance/ledger.jsonl`."""
    return default_path(path) if path.is_dir() else path


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)  # 3.11 reads the trailing Z


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """`--since`: an ISO date/time (UTC unless it says otherwise) or an age like 7d, 12h, 30m."""
    m = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(**{unit: int(m.group(1))})
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        msg = f"--since {value!r} is neither an ISO date/time nor an age like 7d, 12h or 30m"
        raise UsageError(msg) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# -- summary ------------------------------------------------------------------------------


@dataclass
class CheckStats:
    name: str
    runs: int = 0
    passed: int = 0
    failed: int = 0
    other: int = 0  # skipped: neither a pass nor a failure
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
            "results": self.results,
            "passRate": self.pass_rate,
            "tiers": self.tiers,
            "checks": [
                {
                    "name": c.name,
                    "runs": c.runs,
                    "passed": c.passed,
                    "failed": c.failed,
                    "passRate": c.pass_rate,
                    "lastResult": c.last_result,
                    "lastTime": c.last_time,
                    "tiers": dict(c.tiers),
                }
                for c in self.checks
            ],
            "parts": [p.as_json() for p in self.parts],
        }


def _run_rate(checks: Iterable[CheckRecord]) -> float | None:
    results = [c.result for c in checks]
    passed = sum(r in PASSING for r in results)
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
            if c.result in PASSING:
                s.passed += 1
                s.tiers[c.tier] += 1
                tiers[c.tier] += 1
            elif c.result in FAILING:
                s.failed += 1
            else:
                s.other += 1
            if e.time >= s.last_time:
                s.last_result, s.last_time = c.result, e.time
    ordered = sorted(entries, key=lambda e: (e.time, e.seq))
    return Summary(
        label=label,
        chain=chain,
        runs=len(entries),
        ok_runs=sum(e.ok for e in entries),
        by_command=dict(sorted(Counter(e.command for e in entries).items())),
        first_time=ordered[0].time if ordered else None,
        last_time=ordered[-1].time if ordered else None,
        actors=tuple(sorted({f"{e.actor.user}@{e.actor.host}" for e in entries})),
        repos=tuple(sorted({e.repo for e in entries})),
        commits=len({e.commit for e in entries if e.commit}),
        results=results,
        checks=tuple(stats[n] for n in sorted(stats)),
        tiers={t: tiers.get(t, 0) for t in TIERS},
        recent=tuple(reversed(ordered[-RECENT:])),
        points=tuple(
            RunPoint(e.seq, e.time, e.command, _run_rate(e.checks), e.duration_ms) for e in ordered
        ),
        parts=tuple(parts),
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Loading 100k entries creates ~1M long-lived, acyclic objects; with the collector on,
    # its repeated full passes over them cost more than the parsing (8 s vs 2 s measured).
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load(path: Path) -> tuple[list[Entry], ChainReport]:
    with _gc_paused():
        chain = verify_chain(path, keep=True)
    return chain.items, chain


def summary(path: Path) -> Summary:
    entries, chain = load(path)
    with _gc_paused():
        return summarize(entries, str(path), chain)


def aggregate(paths: Sequence[Path]) -> Summary:
    """Roll several ledgers (files or repo directories) up into one summary with parts."""
    if not paths:
        msg = "no ledgers given"
        raise UsageError(msg, "pass ledger files or repository directories")
    parts: list[Summary] = []
    everything: list[Entry] = []
    for p in paths:
        entries, chain = load(resolve(p))
        with _gc_paused():
            parts.append(summarize(entries, str(p), chain))
        everything.extend(entries)
    with _gc_paused():
        return summarize(everything, f"{len(paths)} ledgers", None, parts)


# -- rendering ----------------------------------------------------------------------------


def pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def chain_line(chain: ChainReport) -> str:
    if chain.broken:
        return (
            f"BROKEN at line {chain.broken.line}: {chain.broken.reason}; "
            f"{chain.entries} entries before it verify, "
            f"{chain.unverified} after it are ignored"
        )
    tail = (
        f"; a partial last line ({chain.partial_tail} bytes) from an interrupted append "
        "will be dropped by the next append"
        if chain.partial_tail
        else ""
    )
    return f"valid, {chain.entries} entries, head {chain.head}{tail}"


def _tier_line(s: Summary) -> str:
    return ", ".join(f"{s.tiers[t]} {t}" for t in TIERS)


def render_text(s: Summary) -> str:
    out = [f"ledger   {s.label}"]
    if s.chain:
        out.append(f"chain    {chain_line(s.chain)}")
    cmds = ", ".join(f"{n} {c}" for c, n in s.by_command.items()) or "none"
    out += [
        f"runs     {s.runs} ({cmds}); {s.ok_runs} succeeded",
        f"period   {s.first_time or '-'} .. {s.last_time or '-'}",
        f"who      {', '.join(s.actors) or '-'}",
        f"commits  {s.commits}",
        f"results  {s.results} check results; pass rate {pct(s.pass_rate)}",
        f"proven   {_tier_line(s)} (passing results by trust tier)",
    ]
    for p in s.parts:
        status = ("chain valid" if p.chain and p.chain.ok else "CHAIN BROKEN") if p.chain else ""
        out.append(
            f"  {p.label}: {p.runs} runs, pass rate {pct(p.pass_rate)}, {_tier_line(p)}; {status}"
        )
    if s.checks:
        width = max(len(c.name) for c in s.checks)
        out.append("")
        out.append(f"{'check':<{width}}  runs  pass rate  local  ci  reproduced  last")
        out += [
            f"{c.name:<{width}}  {c.runs:>4}  {pct(c.pass_rate):>9}  {c.tiers['local']:>5}  "
            f"{c.tiers['ci']:>2}  {c.tiers['reproduced']:>10}  {c.last_result} {c.last_time}"
            for c in s.checks
        ]
    return "\n".join(out) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """Escape an untrusted string for Markdown (GitHub flavour), inline or in a table cell.

    HTML is neutralised as entities, emphasis/code/link/table syntax is backslash-escaped,
    and `@` gets a zero-width space so `user@host` cannot mention (ping) anyone.
    """
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s).replace("@", "@\u200b")


def render_markdown(s: Summary) -> str:
    lines = [f"### Provenance audit: {md(s.label)}", ""]
    if s.chain:
        mark = "✅" if s.chain.ok else "❌"
        lines += [f"{mark} **Chain:** {md(chain_line(s.chain))}", ""]
    lines += [
        "| runs | succeeded | pass rate | local | ci | reproduced | commits |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s.runs} | {s.ok_runs} | {pct(s.pass_rate)} | {s.tiers['local']} | {s.tiers['ci']} "
        f"| {s.tiers['reproduced']} | {s.commits} |",
        "",
    ]
    if s.parts:
        lines += ["| ledger | runs | pass rate | reproduced | chain |", "|---|---:|---:|---:|---|"]
        lines += [
            f"| {md(p.label)} | {p.runs} | {pct(p.pass_rate)} | {p.tiers['reproduced']} | "
            f"{'valid' if p.chain and p.chain.ok else 'BROKEN'} |"
            for p in s.parts
        ]
        lines.append("")
    if s.checks:
        lines += [
            "| check | runs | pass rate | local | ci | reproduced | last |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {md(c.name)} | {c.runs} | {pct(c.pass_rate)} | {c.tiers['local']} | "
            f"{c.tiers['ci']} | {c.tiers['reproduced']} | {md(c.last_result)} |"
            for c in s.checks
        ]
        lines.append("")
    if s.recent:
        lines += [
            "<details><summary>Recent runs</summary>",
            "",
            "| time | command | ok | commit | tier | checks | by |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {md(e.time)} | {md(e.command)} | {'yes' if e.ok else 'no'} | "
            f"{md((e.commit or '-')[:12])} | {md(e.tier)} | "
            f"{md(', '.join(f'{c.name}={c.result}' for c in e.checks) or '-')} | "
            f"{md(f'{e.actor.user}@{e.actor.host}')} |"
            for e in s.recent
        ]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


# -- policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    rule: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class PolicyReport:
    rules: tuple[Rule, ...]

    @property
    def ok(self) -> bool:
        return bool(self.rules) and all(r.ok for r in self.rules)

    @property
    def failed(self) -> list[Rule]:
        return [r for r in self.rules if not r.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rules": [{"rule": r.rule, "ok": r.ok, "detail": r.detail} for r in self.rules],
        }

    def raise_if_failed(self) -> None:
        if not self.ok:
            names = "; ".join(f"{r.rule}: {r.detail}" for r in self.failed)
            msg = f"{len(self.failed)} audit rule(s) failed: {names}"
            raise PolicyViolation(msg)


def _latest(records: list[tuple[Entry, CheckRecord]]) -> tuple[Entry, CheckRecord] | None:
    return max(records, key=lambda r: (r[0].time, r[0].seq)) if records else None


def check_policy(
    entries: Sequence[Entry],
    chain: ChainReport,
    *,
    require: Sequence[str] = (),
    require_reproduced: bool = False,
    require_chain: bool = False,
    since: dt.datetime | None = None,
    commit: str | None = None,
) -> PolicyReport:
    """Evaluate the audit rules; an empty rule set is a usage error (it would pass anything).

    - `require CHECK`: the latest result for CHECK in scope passed (passed/cached/reused);
    - `require_reproduced`: that result's drvPath (for every required check, or every check
      in scope when none is required) also has a passing `reproduced` result in scope;
    - `require_chain`: the whole ledger's hash chain verifies.
    Scope: entries at or after `since`, and on `commit` (a full hash or a prefix) if given.
    """
    if not require and not require_reproduced and not require_chain:
        msg = "no audit rules given"
        raise UsageError(msg, "pass --require CHECK, --require-reproduced or --require-chain")
    rules: list[Rule] = []
    if require_chain:
        rules.append(Rule("chain", chain.ok, chain_line(chain)))
    scope = [
        e
        for e in entries
        if (since is None or parse_time(e.time) >= since)
        and (commit is None or (e.commit or "").startswith(commit))
    ]
    where = (
        " ".join(
            x
            for x in (
                f"since {since.isoformat()}" if since else "",
                f"on commit {commit}" if commit else "",
            )
            if x
        )
        or "in the ledger"
    )
    by_name: dict[str, list[tuple[Entry, CheckRecord]]] = {}
    for e in scope:
        for c in e.checks:
            by_name.setdefault(c.name, []).append((e, c))
    for name in require:
        last = _latest(by_name.get(name, []))
        if last is None:
            rules.append(Rule(f"require {name}", False, f"no result for {name} {where}"))
            continue
        e, c = last
        detail = (
            f"latest result {c.result} at {e.time} (line {e.seq + 1}, "
            f"commit {(e.commit or '-')[:12]}, tier {c.tier})"
        )
        rules.append(Rule(f"require {name}", c.result in PASSING, detail))
    if require_reproduced:
        names = list(require) or sorted(by_name)
        if not names:
            rules.append(Rule("require-reproduced", False, f"no check results {where}"))
        for name in names:
            records = by_name.get(name, [])
            last = _latest(records)
            drv = last[1].drv_path if last else None
            hits = [
                (e, c)
                for e, c in records
                if c.result in PASSING
                and TIER_RANK[c.tier] >= TIER_RANK["reproduced"]
                and (drv is None or c.drv_path == drv)
            ]
            if hits:
                e, _ = max(hits, key=lambda r: r[0].seq)
                rules.append(
                    Rule(f"reproduced {name}", True, f"reproduced at {e.time} (line {e.seq + 1})")
                )
            else:
                what = f"{name} ({drv})" if drv else name
                rules.append(
                    Rule(
                        f"reproduced {name}",
                        False,
                        f"no passing reproduced result for {what} {where}",
                    )
                )
    return PolicyReport(tuple(rules))
