"""Renderings of a `GateReport`: the $GITHUB_OUTPUT lines, the $GITHUB_STEP_SUMMARY
Markdown, the stderr text and the JSON, and `write_ci_files`, which appends the first
two to the files CI names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.ci.report import GateReport
from provenance.text import printable

if TYPE_CHECKING:  # a review is rendered only with --base (gate.py imports it then)
    from provenance.review.compare import Review
    from provenance.review.results import TestSet


def _one_line(text: str) -> str:
    # Whitespace runs (a multi-line nix error) collapse; other control characters, which
    # come from check names and notes, are shown escaped (provenance/text.py).
    return printable(" ".join(text.split()))


def github_output(report: GateReport) -> str:
    """Lines for $GITHUB_OUTPUT: skip, reason (one line), commit."""
    return f"skip={'true' if report.skip else 'false'}\nreason={_one_line(report.reason)}\n" + (
        f"commit={report.commit}\n" if report.commit else ""
    )


def _md(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def step_summary(report: GateReport) -> str:
    """A markdown section for $GITHUB_STEP_SUMMARY: verdict, then a table per check."""
    verdict = "skip: the checks are proven" if report.skip else "run: the checks are not proven"
    rev = f"`{report.commit[:12]}`" if report.commit else f"`{report.rev}`"
    out = [f"### provenance gate: {verdict}", "", f"Revision {rev}: {_md(report.reason)}", ""]
    if report.checks:
        out += ["| check | verdict | drvPath | attested at | reason |", "|---|---|---|---|---|"]
        for c in report.checks:
            drv = f"`{c.drv_path.rsplit('/', 1)[-1]}`" if c.drv_path else ""
            at = f"`{c.commit[:12]}`" if c.commit else ""
            mark = "pass" if c.passed else "not proven"
            out.append(f"| {_md(c.name)} | {mark} | {drv} | {at} | {_md(c.reason)} |")
        out.append("")
    if report.review is not None:
        out += review_markdown(report.review)
    out.append(
        f"Notes: {report.notes or 'n/a'}. Trust: {report.trust or 'n/a'}. "
        f"Search depth: {report.search_depth} commit(s)."
    )
    out += [f"> warning: {_md(w)}" for w in report.warnings]
    return "\n".join(out) + "\n"


def _counts(t: TestSet | None) -> str:
    if t is None:
        return "not attested"
    text = f"{t.passed} passed, {t.failed} failed, {t.skipped} skipped"
    return text if t.listed else f"{text} (counts only)"


def review_markdown(review: Review) -> list[str]:
    from provenance.review.deltas import Delta  # noqa: PLC0415 - only with --base

    """The PR summary's table of test deltas and protected-path changes against the base."""
    b = review.base
    out = [
        f"#### Against the base `{_md(b.ref)}` (merge base `{b.merge_base[:12]}`): "
        + ("nothing stands in the way" if review.ok else "run"),
        "",
    ]
    changed = [t for t in review.tests if t.base_drv != t.drv]
    if changed:
        out += ["| check | tests on the base | tests on the change |", "|---|---|---|"]
        out += [f"| {_md(t.name)} | {_counts(t.base)} | {_counts(t.change)} |" for t in changed]
        out.append("")
    if review.items:
        out += ["| check or path | change | approved by | blocks the skip |", "|---|---|---|---|"]
        for i in review.items:
            if isinstance(i, Delta):
                what = i.describe().split(": ", 1)[1]
                where = _md(i.check)
            else:
                what = f"{i.kind} (protected: `{_md(i.pattern)}`)"
                where = f"`{_md(i.path)}`"
            who = ", ".join(review.approved_by(i)) or "-"
            out.append(
                f"| {where} | {_md(what)} | {_md(who)} | {'yes' if review.blocks(i) else 'no'} |"
            )
        out.append("")
    else:
        out += ["No test deltas and no protected-path changes.", ""]
    out += [f"> doubt: {_md(d)}" for d in review.doubts]
    out += [f"> approval not counted: {_md(d)}" for d in review.ignored]
    out.append(f"Review policy: {_md(review.policy.source)}.")
    out.append("")
    return out


def text(report: GateReport) -> str:
    """The human verdict for stderr."""
    p = printable
    lines = [f"gate: skip={'true' if report.skip else 'false'}: {p(report.reason)}"]
    for c in report.checks:
        lines.append(f"  {'PASS' if c.passed else 'RUN '} {p(c.name)}: {p(c.reason)}")
    if report.review is not None:
        r = report.review
        lines.append(
            f"  base {p(r.base.ref)} (merge base {r.base.merge_base[:12]}): {p(r.reason())}"
        )
        for i in r.items:
            who = ", ".join(r.approved_by(i))
            state = "BLOCKS" if r.blocks(i) else f"approved by {p(who)}" if who else "allowed"
            lines.append(f"    {p(i.describe())} [{state}]")
        lines += [f"    doubt: {p(d)}" for d in r.doubts]
        lines += [f"    approval not counted: {p(d)}" for d in r.ignored]
    lines += [f"warning: {p(w)}" for w in report.warnings]
    if report.notes or report.trust:
        lines.append(f"  notes: {p(report.notes)}; trust: {p(report.trust)}")
    return "\n".join(lines)


def to_json(report: GateReport) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True)


def write_ci_files(report: GateReport, environ: Mapping[str, str] | None = None) -> list[str]:
    """Append to $GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY when set; return problems, if any.

    A failure to write is reported, never raised: without `skip=true` CI runs anyway.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    for var, body in (
        ("GITHUB_OUTPUT", github_output(report)),
        ("GITHUB_STEP_SUMMARY", step_summary(report)),
    ):
        path = env.get(var)
        if not path:
            continue
        try:
            with Path(path).open("a", encoding="utf-8") as f:
                f.write(body)
        except OSError as e:
            problems.append(f"cannot write ${var} ({path}): {e.strerror}")
    return problems
