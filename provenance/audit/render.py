"""Text and Markdown renderings of a `Summary` (the HTML page is `html`).

Both are built from the one `Summary` value. Ledger strings are untrusted: `md` escapes
them for Markdown (HTML as entities, no emphasis, links or mentions).
"""

from __future__ import annotations

import re

from provenance.audit.chain import ChainReport
from provenance.audit.models import Entry
from provenance.audit.stats import TIERS, Summary
from provenance.text import printable


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
        *(
            [f"dirty    {s.dirty_runs} build(s) of a dirty tree: shown, never counted as proof"]
            if s.dirty_runs
            else []
        ),
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
    # Check names and actors come from the ledger (and so from flakes): escape controls.
    return "\n".join(printable(line) for line in out) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """Escape an untrusted string for Markdown (GitHub flavour), inline or in a table cell.

    HTML is neutralised as entities, emphasis/code/link/table syntax is backslash-escaped,
    and `@` gets a zero-width space so `user@host` cannot mention (ping) anyone.
    """
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s).replace("@", "@\u200b")


def _who(e: Entry, actors: bool) -> str:
    """Who ran it, for Markdown: the key, and `user@host` only when asked (PR comments are
    public; a user and host name are not the reader's business by default)."""
    key = f"key {e.actor.keyid[:12]}" if e.actor.keyid else ""
    person = f"{e.actor.user}@{e.actor.host}" if actors else ""
    return " ".join(x for x in (person, key) if x) or "-"


def render_markdown(s: Summary, *, actors: bool = False) -> str:
    """The summary as GitHub Markdown; `actors` adds user@host to the recent runs."""
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
    if s.dirty_runs:
        lines += [
            f"⚠️ {s.dirty_runs} build(s) of a dirty tree (uncommitted changes): listed below, "
            "never counted as passes or by `audit check`.",
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
    if s.branches:
        lines += ["| branch | newest commit | state | proven by |", "|---|---|---|---|"]
        lines += [
            f"| {md(b.branch)} | {md(b.head.commit[:12])} | "
            f"{'proven' if b.head.proven else 'not proven'} | "
            f"{md('; '.join(p.label(actor=actors) for p in b.head.prover_list) or '-')} |"
            for b in s.branches
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
            f"{md((e.commit or '-')[:12])}{' **dirty**' if e.dirty else ''} | {md(e.tier)} | "
            f"{md(', '.join(f'{c.name}={c.result}' for c in e.checks) or '-')} | "
            f"{md(_who(e, actors))} |"
            for e in s.recent
        ]
        lines += ["", "</details>", ""]
    return "\n".join(lines)
