"""The audit policy check (`provenance audit check`): rules over the verified ledger entries.

`check_policy` evaluates `--require CHECK`, `--require-reproduced` and `--require-chain`
in a scope (`--since`, read by `parse_since`, and `--commit`) and returns a
`PolicyReport` with one `Rule` per condition; entries after a chain break never count.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provenance.audit.chain import ChainReport
from provenance.audit.models import CheckRecord, Entry
from provenance.audit.render import chain_line
from provenance.audit.stats import parse_time
from provenance.audit.vocab import PASSING, TIER_RANK
from provenance.errors import PolicyViolation, UsageError


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
    # Within one entry the last record decides (verify lists attestations, then verdicts).
    ranked = [(e.time, e.seq, i, (e, c)) for i, (e, c) in enumerate(records)]
    return max(ranked, key=lambda r: r[:3])[3] if ranked else None


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
    Builds of a dirty tree are never in scope: they attest uncommitted changes, not the
    commit they name (a fix that was never committed must not pass `require`).
    """
    if not require and not require_reproduced and not require_chain:
        msg = "no audit rules given"
        raise UsageError(msg, "pass --require CHECK, --require-reproduced or --require-chain")
    rules: list[Rule] = []
    if require_chain:
        rules.append(Rule("chain", chain.ok, chain_line(chain)))
    in_scope = [
        e
        for e in entries
        if (since is None or parse_time(e.time) >= since)
        and (commit is None or (e.commit or "").startswith(commit))
    ]
    scope = [e for e in in_scope if not e.dirty]
    dirty = {c.name for e in in_scope if e.dirty for c in e.checks}
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
            also = " (only dirty-tree builds, which never count)" if name in dirty else ""
            rules.append(Rule(f"require {name}", False, f"no result for {name} {where}{also}"))
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
