"""Reading the audit ledger: loading, summaries, multi-repo roll-ups (and, re-exported
from their modules, the renderings and the policy check).

Everything here works on the *verified prefix* of a ledger: the entries before the first
break in the hash chain. Entries after a break are counted (`ChainReport.unverified`)
but never summarised or used to pass a policy, because nothing vouches for them.

The `Summary` value and its counting are `stats`; text and Markdown are `render`, the
HTML page `html`; the policy check is `rules`. This module re-exports their public names,
so callers need only `from provenance.audit import summary`.
Docs: docs/audit.md.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from provenance.audit.chain import ChainReport, verify_chain
from provenance.audit.ledger import default_path
from provenance.audit.models import Entry
from provenance.audit.render import chain_line, md, pct, render_markdown, render_text
from provenance.audit.rules import PolicyReport, Rule, check_policy, parse_since
from provenance.audit.stats import (
    RECENT,
    TIERS,
    CheckStats,
    RunPoint,
    Summary,
    parse_time,
    summarize,
)
from provenance.errors import UsageError

__all__ = [
    "RECENT",
    "TIERS",
    "CheckStats",
    "PolicyReport",
    "Rule",
    "RunPoint",
    "Summary",
    "aggregate",
    "chain_line",
    "check_policy",
    "ledger_path",
    "load",
    "md",
    "parse_since",
    "parse_time",
    "pct",
    "render_markdown",
    "render_text",
    "resolve",
    "summarize",
    "summary",
]


def ledger_path(ledger: Path | None, repo: Path | None = None) -> Path:
    """The ledger to read: --ledger, or the repository's `.provenance/ledger.jsonl`."""
    if ledger is not None:
        return ledger
    from provenance.doors.git import Git  # noqa: PLC0415 - only needed without --ledger

    return default_path(Git(repo or Path.cwd()).toplevel())


def resolve(path: Path) -> Path:
    """A ledger file, or a repository directory holding `.provenance/ledger.jsonl`."""
    return default_path(path) if path.is_dir() else path


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
        try:
            entries, chain = load(resolve(p))
        except UsageError as e:
            # load's hint names --ledger, which aggregate does not have: it takes paths.
            hint = "run `provenance build` in that repository first, or name the ledger file"
            raise UsageError(e.message, hint) from None
        with _gc_paused():
            parts.append(summarize(entries, str(p), chain))
        everything.extend(entries)
    with _gc_paused():
        return summarize(everything, f"{len(paths)} ledgers", None, parts)
