"""Renderings of a `GateReport`: the $GITHUB_OUTPUT lines, the $GITHUB_STEP_SUMMARY
Markdown, the stderr text and the JSON, and `write_ci_files`, which appends the first
two to the files CI names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from provenance.ci.report import GateReport
from provenance.text import printable


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
    out.append(
        f"Notes: {report.notes or 'n/a'}. Trust: {report.trust or 'n/a'}. "
        f"Search depth: {report.search_depth} commit(s)."
    )
    out += [f"> warning: {_md(w)}" for w in report.warnings]
    return "\n".join(out) + "\n"


def text(report: GateReport) -> str:
    """The human verdict for stderr."""
    p = printable
    lines = [f"gate: skip={'true' if report.skip else 'false'}: {p(report.reason)}"]
    for c in report.checks:
        lines.append(f"  {'PASS' if c.passed else 'RUN '} {p(c.name)}: {p(c.reason)}")
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
