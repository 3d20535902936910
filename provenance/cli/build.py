"""`build` (attest the flake's checks) and `example` (the built-in walk-through: keygen,
build, show)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from provenance.cli.common import (
    JsonOut,
    StderrReporter,
    Verbose,
    emit_json,
    fail,
    guard,
    record_build,
    setup_logging,
)


def build(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", envvar="PROVENANCE_KEY", help="Ed25519 signing key (or $PROVENANCE_KEY)."
        ),
    ] = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Attest only this check (repeatable).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Bundle path.",
            show_default="FLAKE_DIR/.provenance/COMMIT.KEYID.intoto.jsonl",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild and re-attest even on a cache hit.")
    ] = False,
    allow_dirty: Annotated[
        bool,
        typer.Option(
            "--allow-dirty", help="Attest uncommitted changes (labelled dirty; no git note)."
        ),
    ] = False,
    no_note: Annotated[
        bool, typer.Option("--no-note", help="Write the bundle but attach no git note.")
    ] = False,
    verify_deps: Annotated[
        bool,
        typer.Option(
            "--verify-deps",
            help="First prove that dependency outputs and sources in the store still match "
            "their recorded hashes (nix store verify); recorded in the statement.",
        ),
    ] = False,
    service: Annotated[
        Path | None,
        typer.Option(
            "--service",
            envvar="PROVENANCE_SERVICE",
            help="Have the attestation service at this socket build and sign "
            "(or $PROVENANCE_SERVICE); no key needed (docs/service.md).",
        ),
    ] = None,
    json_out: JsonOut = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Evaluate the flake's checks, build them in the Nix sandbox, and sign what was proven.

    Each check's outputs become subjects (hex NAR SHA-256) of an in-toto Statement with
    an SLSA Provenance v1 predicate, signed in a DSSE envelope. The bundle (.intoto.jsonl)
    is written atomically and unioned into the git note refs/notes/provenance on HEAD.
    A check this key already attested for the same drvPath on HEAD or one of its 49
    ancestors (a README-only commit keeps the drvPath) is a cache hit: reused, not rebuilt.
    """
    setup_logging(verbose)
    if service is not None:
        from provenance.cli.serve import build_via_service  # noqa: PLC0415

        options = (check, output, force, allow_dirty, no_note, verify_deps)
        build_via_service(service, flake_dir, key, options, json_out=json_out, quiet=quiet)
        return
    from provenance.attest import pipeline as attest  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.formats import keys  # noqa: PLC0415

    if key is None:
        fail("no signing key", "pass --key PATH or set PROVENANCE_KEY")
    reporter = StderrReporter(quiet=quiet)
    signer = guard(lambda: keys.load_signer(key))
    req = attest.BuildRequest(
        flake_dir=flake_dir,
        signer=signer,
        checks=tuple(check) if check else None,
        output=output,
        force=force,
        allow_dirty=allow_dirty,
        attach_note=not no_note,
        verify_deps=verify_deps,
    )
    started = time.monotonic()

    def run_build() -> attest.BuildReport:
        try:
            return attest.build(req, Nix(default_nix_bin()), reporter)
        except attest.ChecksFailedError as e:
            record_build(flake_dir, e.report, started, reporter)  # failed runs count too
            raise

    report = guard(run_build)
    record_build(flake_dir, report, started, reporter)
    if json_out:
        emit_json(report.as_json())
    where = f"bundle {report.bundle_path}" if report.bundle_path else "no bundle"
    note = "; note on refs/notes/provenance" if report.note_attached else ""
    reporter.info(f"{len(report.checks)} check(s) proven at {report.commit[:12]}: {where}{note}")


def example(
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where to put the example.", show_default="a temp dir"),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Run the built-in example: copy a small flake, git-commit it, keygen, build, show."""
    from provenance import example as ex  # noqa: PLC0415

    summary = guard(lambda: ex.run(workdir, StderrReporter()))
    if json_out:
        emit_json(summary)
