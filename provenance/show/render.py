"""`provenance show` for a terminal (colour only when asked: the CLI asks on a TTY without
NO_COLOR) and as JSON (docs/show.md). Every string from a note is untrusted text:
control characters are escaped before it reaches a terminal."""

from __future__ import annotations

import json

from provenance.review.compare import Review
from provenance.review.results import TestSet
from provenance.show.model import CheckFacts, ShowReport

_CODES = {"ok": "32", "bad": "31", "warn": "33", "dim": "2", "bold": "1"}


class _Paint:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, style: str, text: str) -> str:
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m" if self.colour else text


def _safe(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _counts(t: TestSet) -> str:
    text = f"{t.passed} passed, {t.failed} failed, {t.skipped} skipped"
    return text + ("" if t.listed else " (counts only, no test ids)")


def _check(c: CheckFacts, p: _Paint) -> list[str]:
    mark = p("ok", "PROVEN") if c.proven else p("bad", "NOT PROVEN")
    out = [f"{p('bold', _safe(c.name))}  {mark}  {_safe(c.reason)}"]
    out.append(f"  {p('dim', 'drvPath ')} {c.drv_path}")
    for o, path in sorted(c.outputs.items()):
        digest = c.digests.get(o)
        out.append(
            f"  {p('dim', f'{o:8}')} {path}" + (f"  sha256 {digest[:16]}…" if digest else "")
        )
    if c.tests is not None:
        style = {"PASSED": "ok", "FAILED": "bad"}.get(c.test_result or "", "warn")
        out.append(f"  {p('dim', 'tests   ')} {p(style, c.test_result or '?')}: {_counts(c.tests)}")
    else:
        out.append(f"  {p('dim', 'tests   ')} no trusted test-result statement")
    for i, a in enumerate(c.attestations):
        label = p("dim", "signed  " if i == 0 else "        ")
        where = f"on {a.commit[:12]}" + (
            p("warn", " (reused from an ancestor)") if a.reused else ""
        )
        why = p("bad", f" does not count: {_safe(a.problem)}") if a.problem else ""
        out.append(f"  {label} {_safe(a.signer)} [{a.tier}] {where}, {a.output_check}{why}")
    if not c.attestations:
        out.append(f"  {p('dim', 'signed  ')} no trusted signer for this drvPath")
    for i, v in enumerate(c.verifications):
        label = p("dim", "verified" if i == 0 else "        ")
        result = p("ok" if v.result == "PASSED" else "bad", _safe(v.result))
        levels = ", ".join(_safe(x) for x in v.levels)
        out.append(f"  {label} {_safe(v.verifier)}: {result} {levels} ({_safe(v.time)})")
    if c.other_drv_paths:
        out.append(
            f"  {p('dim', 'older   ')} {c.other_drv_paths} statement(s) for other drvPaths "
            "of this check (its inputs changed since)"
        )
    return out


def _review(r: Review, p: _Paint) -> list[str]:
    state = p("ok", "ok") if r.ok else p("bad", "run")
    out = [
        f"{p('bold', 'against the base')} {_safe(r.base.ref)} (merge base "
        f"{r.base.merge_base[:12]}): {state}: {_safe(r.reason())}"
    ]
    for i in r.items:
        who = ", ".join(r.approved_by(i))
        if r.blocks(i):
            state = p("bad", "not approved")
        else:
            state = p("ok", f"approved by {who}") if who else p("dim", "allowed by the policy")
        out.append(f"  {_safe(i.describe())} [{state}]")
    out += [f"  {p('warn', 'doubt:')} {_safe(d)}" for d in r.doubts]
    out += [f"  {p('warn', 'approval not counted:')} {_safe(d)}" for d in r.ignored]
    return out


def text(report: ShowReport, *, colour: bool = False) -> str:
    p = _Paint(colour)
    verdict = p("ok", "PROVEN") if report.proven else p("bad", "NOT PROVEN")
    trust = report.trust
    reviewers = ", ".join(k.name for k in report.reviewers.reviewers) or "none"
    out = [
        f"{p('bold', 'provenance show')} {report.commit[:12]} ({_safe(report.rev)}) "
        f"on {report.system}: {verdict}",
        p(
            "dim",
            f"trust: {_safe(trust.source)} ({len(trust.keys)} key(s), threshold "
            f"{trust.threshold}); reviewers: {_safe(reviewers)}",
        ),
        "",
    ]
    for c in report.checks:
        out += [*_check(c, p), ""]
    if report.approvals:
        out.append(p("bold", "approvals"))
        for ap in report.approvals:
            a = ap.approval
            counts = p("ok", "counts") if ap.counts else p("warn", "does not count here")
            who = ", ".join(ap.reviewers)
            out.append(
                f"  {_safe(who)} approved {a.commit[:12]} against {_safe(a.base_ref)} "
                f"on {_safe(a.approved_on)} [{counts}]: {_safe(a.reason) or '(no reason given)'}"
            )
            out += [f"    {_safe(d.describe())}" for d in a.deltas]
            out += [f"    {_safe(x.describe())}" for x in a.paths]
        out.append("")
    if report.review is not None:
        out += [*_review(report.review, p), ""]
    if report.untrusted_lines:
        hints = ", ".join(report.untrusted) or "no keyid"
        out.append(
            p("warn", f"{report.untrusted_lines} note line(s) signed by no trusted key ({hints}): ")
            + "not shown"
        )
    if report.unreadable:
        out.append(p("warn", f"{report.unreadable} note line(s) cannot be read"))
    return "\n".join(out).rstrip("\n") + "\n"


def to_json(report: ShowReport) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True)
