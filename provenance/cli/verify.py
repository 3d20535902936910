"""`verify`: check attestations (authentic, bound, reproduced) and optionally sign a VSA."""

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
    record,
    review_rules,
    setup_logging,
)
from provenance.errors import ExitCode


def verify(
    bundles: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Bundles (.intoto.jsonl) to verify.", show_default="the git note on --rev"
        ),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Trust this Ed25519 public key (repeatable)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="Trust policy file.", show_default="the repo's provenance.toml"
        ),
    ] = None,
    flake: Annotated[
        Path, typer.Option("--flake", help="Flake directory in the git repo.")
    ] = Path(),
    rev: Annotated[
        str, typer.Option("--rev", help="The commit attestations must bind to.")
    ] = "HEAD",
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Verify only this check (repeatable).")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild; compare every output's NAR hash (level 3).")
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Fresh store root for --rebuild.", show_default="a temp dir"),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Rebuild in the local store (nix --rebuild).")
    ] = False,
    substituters: Annotated[
        list[str] | None,
        typer.Option(
            "--substituters",
            help="A binary cache the rebuild may take dependencies from, never the attested "
            "derivation (repeatable). Default: only those in your Nix config.",
        ),
    ] = None,
    trusted_public_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-public-keys",
            help="A Nix public key (NAME:BASE64) whose signatures make a substitute "
            "acceptable (repeatable); unsigned paths are refused.",
        ),
    ] = None,
    sign_with: Annotated[
        Path | None,
        typer.Option("--sign-with", help="Sign an SLSA Verification Summary with this key."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="VSA bundle.",
            show_default="FLAKE/.provenance/REV.KEYID.vsa.intoto.jsonl",
        ),
    ] = None,
    no_note: Annotated[bool, typer.Option("--no-note", help="Attach no VSA git note.")] = False,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Also compare tests and protected paths with this branch; unapproved"
            " weakenings fail verification.",
            show_default="no comparison",
        ),
    ] = None,
    json_out: JsonOut = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only failures and the verdict.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Check attestations: signatures, binding to the flake at --rev, and (--rebuild) reproduction.

    Levels: authentic (trusted signatures over the exact payload), bound (re-evaluating
    the flake at the attested commit gives the attested drvPath and outputs), reproduced
    (an independent rebuild gives the attested NAR hashes; differing files are listed).
    Exit 0 all verified, 1 verification failed, 2 bad usage or unreadable input,
    4 nix/git failure. See docs/verify.md.
    """
    setup_logging(verbose)
    from provenance.cache.substituters import Caches  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.formats import keys  # noqa: PLC0415
    from provenance.policy import resolve as policy_mod  # noqa: PLC0415
    from provenance.verify import pipeline as verify_mod  # noqa: PLC0415

    if output is not None and sign_with is None:
        # -o names the VSA bundle, which only --sign-with produces: ignoring it silently would
        # leave the user looking for a file that was never written.
        fail("--output is the VSA bundle, written only with --sign-with", "pass --sign-with KEY")
    reporter = StderrReporter(quiet=quiet)
    search = [flake.resolve()]
    trust = guard(lambda: policy_mod.resolve(list(trusted_key or []), policy, search))
    signer = guard(lambda: keys.load_signer(sign_with)) if sign_with else None
    caches = guard(lambda: Caches.of(substituters or [], trusted_public_keys or []))
    req = verify_mod.VerifyRequest(
        flake_dir=flake,
        policy=trust,
        bundles=tuple(bundles or ()),
        rev=rev,
        checks=tuple(check) if check else None,
        rebuild=rebuild,
        in_place=in_place,
        store=store,
        caches=caches,
        signer=signer,
        vsa_output=output,
        attach_note=not no_note,
        base=base,
        review_policy=review_rules(policy) if base is not None and policy is not None else None,
    )
    started = time.monotonic()
    report = guard(lambda: verify_mod.verify(req, Nix(default_nix_bin()), reporter))
    record(
        flake,
        "verify",
        ok=report.passed,
        commit=report.rev,
        report=report,
        bundles=[(b, "read") for b in bundles or ()],
        started=started,
        reporter=reporter,
        keyid=signer.keyid if signer else None,  # the reviewer's --sign-with key
    )
    if json_out:
        emit_json(report.as_json())
    for line in report.lines():
        if not quiet or not line.startswith(("OK", "SKIP")):
            typer.echo(line, err=True)
    if report.vsa_path:
        note = "; note on refs/notes/provenance" if report.vsa_note else ""
        reporter.info(f"verification summary: {report.vsa_path}{note}")
    if not report.passed:
        raise typer.Exit(ExitCode.FAILED)
