"""What every command shares: the one exit point for our errors (`guard`), `--json` output,
the stderr reporter, logging, and recording each build/verify/gate run in the audit ledger.

Not in `cli/__init__.py`: that module imports the command modules, so helpers defined there
would have to precede those imports and be read from a half-initialised package.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from provenance.errors import ProvenanceError
from provenance.progress import Reporter

T = TypeVar("T")


class StderrReporter(Reporter):
    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            typer.echo(message, err=True)

    def warn(self, message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    def log_line(self, check: str, line: str) -> None:
        if not self.quiet:
            typer.echo(f"  {check}| {line}", err=True)


def setup_logging(verbose: bool) -> None:
    # Imported here, not at the top: only build, verify and gate log, and `import
    # provenance.cli` (every command's start-up, `--help` included) should not pay for it.
    import logging  # noqa: PLC0415

    log = logging.getLogger("provenance")
    level = os.environ.get("PROVENANCE_LOGLEVEL", "DEBUG" if verbose else "WARNING").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def guard(fn: Callable[[], T]) -> T:
    """Run an API call; turn our errors into one stderr line and a documented exit code."""
    try:
        return fn()
    except ProvenanceError as e:
        typer.echo(f"error: {e.diagnostics()}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing was attached", err=True)
        raise typer.Exit(130) from None


def emit_json(obj: Any) -> None:
    import json  # noqa: PLC0415 - start-up time, as for logging above

    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Debug logging (every nix/git call).")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


def record_build(flake_dir: Path, report: Any, started: float, reporter: Reporter) -> None:
    record(
        flake_dir,
        "build",
        ok=not report.failed,
        commit=report.commit,
        report=report,
        bundles=[(report.bundle_path, "written")] if report.bundle_path else [],
        started=started,
        reporter=reporter,
        keyid=report.keyid,
        dirty=report.dirty,
    )


def record(
    where: Path,
    command: Literal["build", "verify", "gate"],
    *,
    ok: bool,
    commit: str | None,
    report: Any,
    bundles: list[tuple[Path, Literal["written", "read"]]],
    started: float,
    reporter: Reporter,
    keyid: str | None = None,
    dirty: bool = False,
) -> None:
    """Append the run to the audit ledger; a ledger problem is only a warning."""
    from provenance.audit import ledger  # noqa: PLC0415

    per_check = {
        "build": ledger.build_checks,
        "verify": ledger.verify_checks,
        "gate": ledger.gate_checks,
    }[command]
    ledger.record(
        where,
        command=command,
        ok=ok,
        commit=commit,
        checks=per_check(report),
        bundles=bundles,
        keyid=keyid,
        duration_ms=int((time.monotonic() - started) * 1000),
        warn=reporter.warn,
        dirty=dirty,
    )
