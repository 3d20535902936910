"""`audit verify|summary|report|aggregate|check`: read the audit ledger
(.provenance/ledger.jsonl)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from provenance.cli.common import JsonOut, emit_json, fail, guard
from provenance.errors import ExitCode
from provenance.text import printable

audit_app = typer.Typer(
    help="Read the audit ledger (.provenance/ledger.jsonl): verify, summarise, report, gate.",
    no_args_is_help=True,
)

LedgerOpt = Annotated[
    Path | None,
    typer.Option(
        "--ledger", help="Ledger file.", show_default="<git toplevel>/.provenance/ledger.jsonl"
    ),
]


def _ledger(ledger: Path | None) -> Path:
    from provenance.audit import summary as audit  # noqa: PLC0415

    return guard(lambda: audit.ledger_path(ledger))


def _warn_chain(chain: Any) -> None:
    from provenance.audit import summary as audit  # noqa: PLC0415

    if chain.broken:
        typer.echo(f"warning: {chain.path}: chain {audit.chain_line(chain)}", err=True)
    elif chain.partial_tail:
        typer.echo(f"warning: {chain.path}: {audit.chain_line(chain)}", err=True)


@audit_app.command("verify")
def audit_verify(ledger: LedgerOpt = None, json_out: JsonOut = False) -> None:
    """Check the hash chain; name the first broken entry (exit 1) or print the head hash."""
    from provenance.audit import ledger as ledger_mod  # noqa: PLC0415

    path = _ledger(ledger)
    report = guard(lambda: ledger_mod.verify_chain(path))
    if json_out:
        emit_json(report.as_json())
    if report.partial_tail:
        typer.echo(
            f"warning: {path}: the last line is incomplete ({report.partial_tail} bytes, "
            "an interrupted append); the next append drops it",
            err=True,
        )
    if report.broken:
        typer.echo(f"error: {report.describe()}", err=True)
        raise typer.Exit(ExitCode.FAILED)
    typer.echo(f"OK: {report.describe()}", err=True)


@audit_app.command("summary")
def audit_summary(ledger: LedgerOpt = None, json_out: JsonOut = False) -> None:
    """Runs, pass rate per check, and how many results are local, CI or reproduced."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    s = guard(lambda: audit.summary(path))
    if s.chain:
        _warn_chain(s.chain)
    if json_out:
        emit_json(s.as_json())
    else:
        typer.echo(audit.render_text(s), nl=False)


# user@host in Markdown is opt-in: a PR comment is public (issue 13).
ActorsOpt = Annotated[
    bool,
    typer.Option(
        "--actors", help="Also name who ran each run (user@host) in the Markdown, not only keys."
    ),
]


def _write_reports(s: Any, html_out: Path | None, markdown: bool, actors: bool = False) -> None:
    from provenance.audit import html as report_html  # noqa: PLC0415
    from provenance.audit import summary as audit  # noqa: PLC0415
    from provenance.formats import bundle  # noqa: PLC0415

    if html_out is None and not markdown:
        fail("nothing to write", "pass --html FILE and/or --markdown")
    if html_out is not None:
        page = report_html.render(s).encode()
        guard(lambda: bundle.write_atomic(html_out, page))
        typer.echo(f"wrote {html_out} ({len(page)} bytes)", err=True)
    if markdown:
        typer.echo(audit.render_markdown(s, actors=actors), nl=False)


@audit_app.command("report")
def audit_report(
    ledger: LedgerOpt = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown (PR comments, step summaries).")
    ] = False,
    actors: ActorsOpt = False,
) -> None:
    """Write the summary as one HTML page (plots, recent runs) and/or Markdown on stdout."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    s = guard(lambda: audit.summary(path))
    if s.chain:
        _warn_chain(s.chain)
    _write_reports(s, html_out, markdown, actors)


@audit_app.command("aggregate")
def audit_aggregate(
    paths: Annotated[list[Path], typer.Argument(help="Ledger files or repository directories.")],
    json_out: JsonOut = False,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML page here.")
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown instead.")] = False,
    actors: ActorsOpt = False,
) -> None:
    """Roll several repositories' ledgers up into one summary."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    s = guard(lambda: audit.aggregate(paths))
    for part in s.parts:
        if part.chain:
            _warn_chain(part.chain)
    if json_out:
        emit_json(s.as_json())
    if html_out is not None or markdown:
        _write_reports(s, html_out, markdown, actors)
    elif not json_out:
        typer.echo(audit.render_text(s), nl=False)


@audit_app.command("check")
def audit_check(
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help="This check's latest result must be a pass (repeatable)."),
    ] = None,
    require_reproduced: Annotated[
        bool,
        typer.Option(
            "--require-reproduced",
            help="Required checks (or all in scope) must also be reproduced.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries from this ISO date/time, or an age: 7d, 12h."),
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="Only entries for this commit (or prefix).")
    ] = None,
    require_chain: Annotated[
        bool, typer.Option("--require-chain", help="The ledger's hash chain must verify.")
    ] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Policy gate over the ledger: exit 0 if every rule holds, 1 listing the failed rules."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    when = guard(lambda: audit.parse_since(since)) if since else None
    entries, chain = guard(lambda: audit.load(path))
    _warn_chain(chain)
    result = guard(
        lambda: audit.check_policy(
            entries,
            chain,
            require=require or [],
            require_reproduced=require_reproduced,
            require_chain=require_chain,
            since=when,
            commit=commit,
        )
    )
    if json_out:
        emit_json(result.as_json())
    for r in result.rules:
        typer.echo(printable(f"{'PASS' if r.ok else 'FAIL'}: {r.rule}: {r.detail}"), err=True)
    guard(result.raise_if_failed)
