"""`publish`: copy a commit's attested outputs to a Nix binary cache (docs/cache.md).

Thin: the work is provenance.cache.publish. Unlike the other commands it prints its
`--json` summary also when it fails (what was selected, what was sent), so it catches our
errors itself instead of going through `guard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from provenance.cli.common import JsonOut, StderrReporter, Verbose, emit_json, setup_logging
from provenance.errors import ProvenanceError, UsageError


def publish(
    rev: Annotated[
        str, typer.Argument(help="The commit whose attested outputs to publish.")
    ] = "HEAD",
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Binary cache URL your Nix can write: file:///DIR, http(s)://HOST/... "
            "(a server that accepts PUT), s3://BUCKET.",
        ),
    ] = "",
    secret_key: Annotated[
        Path | None,
        typer.Option(
            "--secret-key",
            help="The cache's signing key (`nix key generate-secret`). Default: none, the "
            "paths go unsigned and reviewers refuse them.",
        ),
    ] = None,
    closure: Annotated[
        str,
        typer.Option(
            "--closure",
            help="outputs: the attested outputs; runtime: plus what the check's build saw "
            "(its inputs' outputs and sources), enough to rebuild only the check; build: "
            "plus every output of its build closure in this store.",
        ),
    ] = "outputs",
    flake: Annotated[
        Path, typer.Option("--flake", help="Flake directory in the git repo.")
    ] = Path(),
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Publish claims signed by this key (repeatable)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Trust policy file (default: the repo's provenance.toml)."),
    ] = None,
    no_bundle: Annotated[
        bool,
        typer.Option("--no-bundle", help="Do not copy the bundle into the cache as a store path."),
    ] = False,
    json_out: JsonOut = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    verbose: Verbose = False,
) -> None:
    """Copy REV's attested outputs to a Nix binary cache with `nix copy`, signed by the cache.

    Only claims on REV's git note signed by a trusted key count, and each attested output
    must be in this store with its attested NAR hash. Progress on stderr; --json prints a
    summary (paths, bytes, copied, already there) on stdout, also when publishing fails.
    Exit 0 published, 2 bad usage or nothing attested, 3 refused, 4 nix/cache failure.
    See docs/cache.md.
    """
    setup_logging(verbose)
    from provenance.cache import publish as pub  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.policy import resolve as policy_mod  # noqa: PLC0415

    reporter = StderrReporter(quiet=quiet)

    def run() -> Any:
        if not to:
            msg = "no cache to publish to"
            raise UsageError(msg, "pass --to URL, e.g. --to file:///var/cache/nix")
        trust = policy_mod.resolve(list(trusted_key or []), policy, [flake.resolve()])
        req = pub.PublishRequest(
            flake_dir=flake,
            to=to,
            policy=trust,
            rev=rev,
            secret_key=secret_key,
            closure=closure,  # type: ignore[arg-type]  # checked by publish()
            bundle=not no_bundle,
        )
        return pub.publish(req, Nix(default_nix_bin()), reporter)

    try:
        report = run()
    except ProvenanceError as e:
        if json_out:
            partial = getattr(e, "report", None)
            emit_json(partial.as_json() if partial else {"ok": False, "error": e.diagnostics()})
        typer.echo(f"error: {e.diagnostics()}", err=True)
        raise typer.Exit(e.exit_code) from None
    if json_out:
        emit_json(report.as_json())
    summary = report.as_json()
    bundle = f"; bundle {report.bundle}" if report.bundle else ""
    reporter.info(
        f"published {summary['paths']} path(s) ({summary['bytes']} bytes) to {report.to}: "
        f"{len(report.copied)} copied, {len(report.already_there)} already there{bundle}"
    )
