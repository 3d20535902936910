"""What every command shares: the one exit point for our errors (`guard`), `--json` output,
the stderr reporter, logging, and recording each build/verify/gate run in the audit ledger.

Not in `cli/__init__.py`: that module imports the command modules, so helpers defined there
would have to precede those imports and be read from a half-initialised package.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from provenance.errors import ExitCode, ProvenanceError
from provenance.progress import Reporter
from provenance.text import printable

T = TypeVar("T")


class StderrReporter(Reporter):
    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            typer.echo(printable(message), err=True)

    def warn(self, message: str) -> None:
        typer.echo(f"warning: {printable(message)}", err=True)

    def log_line(self, check: str, line: str) -> None:
        # A build's output is the flake author's text: a \r or an escape could forge lines.
        if not self.quiet:
            typer.echo(f"  {printable(check)}| {printable(line)}", err=True)


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


class _Run:
    """This invocation's output state: whether `--json` was asked for, and whether its one
    JSON object has been printed (so an error after a printed result adds no second one)."""

    json = False
    emitted = False


def fail(message: str, hint: str | None = None, code: int = ExitCode.USAGE) -> NoReturn:
    """Refuse from inside a command: the same one line (and `--json` object) as `guard`."""
    _exit(message, hint, code)


def _exit(
    message: str, hint: str | None, code: int, partial: dict[str, Any] | None = None
) -> NoReturn:
    if _Run.json and not _Run.emitted:
        error = {"message": message, "hint": hint, "exitCode": code}
        emit_json({"error": error, **(partial or {})})
    shown = f"{message} ({hint})" if hint else message
    typer.echo(f"error: {printable(shown)}", err=True)
    raise typer.Exit(code)


def guard(fn: Callable[[], T]) -> T:
    """Run an API call; turn our errors into one stderr line and a documented exit code.

    Under `--json` the error is also printed on stdout as `{"error": {...}}`, with the
    per-check status so far when the error carries a report (a build with a failing check).
    """
    try:
        return fn()
    except ProvenanceError as e:
        report = getattr(e, "report", None)
        partial = report.as_json() if report is not None and hasattr(report, "as_json") else None
        _exit(e.message, e.hint, e.exit_code, partial)
    except KeyboardInterrupt:
        _exit("interrupted; nothing was attached", None, 130)


def guard_json(fn: Callable[[], T], json_out: bool) -> T:
    """`guard`, and with --json the error as JSON on stdout too (agents read stdout)."""
    try:
        return fn()
    except ProvenanceError as e:
        if json_out:
            emit_json({"error": e.message, "hint": e.hint, "exitCode": e.exit_code})
        typer.echo(f"error: {e.diagnostics()}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def review_rules(policy_file: Path) -> Any:
    """[review] of a --policy FILE (gate, verify --base): the file stands in for the base's."""
    from provenance.review import policy as review_policy  # noqa: PLC0415

    return guard(lambda: review_policy.load(policy_file))


def emit_json(obj: Any) -> None:
    import json  # noqa: PLC0415 - start-up time, as for logging above

    _Run.emitted = True
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


def _click_exception_types() -> tuple[type[Exception], type[Exception]]:
    # typer >= 0.2x vendors click (typer._click), older ones use click itself: reach both
    # through typer's public BadParameter instead of importing either by name.
    mro = typer.BadParameter.__mro__
    base = next(c for c in mro if c.__name__ == "ClickException")
    return base, typer.Abort


class ProvenanceGroup(TyperGroup):
    """The top-level command: our own rendering of click's usage errors (a bad option
    value, an unknown option, a missing argument) as the one `error: ...` line, exit 2,
    instead of typer's boxed panel; and `--json` honoured for them too."""

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        _Run.json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        _Run.emitted = False
        click_error, abort = _click_exception_types()
        kw["standalone_mode"] = False
        try:
            rc = super().main(argv, *a, **kw)
        except click_error as e:
            fmt = getattr(e, "format_message", None)
            if type(e).__name__ == "NoArgsIsHelpError":  # help was asked for by omission
                text = str(fmt()) if callable(fmt) else ""
                if text:  # empty when rich has printed the help already
                    typer.echo(text, err=True)
                sys.exit(ExitCode.USAGE)
            ctx = getattr(e, "ctx", None)
            hint = f"see {ctx.command_path} --help" if ctx is not None else None
            try:
                _exit(str(fmt()) if callable(fmt) else str(e), hint, ExitCode.USAGE)
            except typer.Exit as done:
                sys.exit(done.exit_code)
        except abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rc if isinstance(rc, int) else 0)


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


def exit_on_sigterm() -> None:
    """SIGTERM exits through atexit (status 143, as dying by it), so that what proc.py
    started ahead, in its own process group, is killed too (launch.py). Only where
    SIGTERM still has its default action."""
    import signal  # noqa: PLC0415

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
