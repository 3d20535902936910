"""`serve` (the attestation service) and what `build --service` runs (docs/service.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from provenance.cli.common import JsonOut, StderrReporter, emit_json, guard, record_build
from provenance.errors import ExitCode


def build_via_service(
    socket_path: Path,
    flake_dir: Path,
    key: Path | None,
    options: tuple[list[str] | None, Path | None, bool, bool, bool, bool],
    *,
    json_out: bool,
    quiet: bool,
) -> None:
    """`build --service`: the same report, output and ledger entry as a local build."""
    from provenance.attest import pipeline as attest  # noqa: PLC0415
    from provenance.service import client  # noqa: PLC0415

    check, output, force, allow_dirty, no_note, verify_deps = options
    reporter = StderrReporter(quiet=quiet)
    if allow_dirty:
        typer.echo(
            "error: --allow-dirty does not go with --service: the service attests commits, "
            "never a work tree (commit first)",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    if key is not None:
        reporter.warn(f"the service signs: the key {key} (--key or $PROVENANCE_KEY) is not used")
    req = client.ServiceBuildRequest(
        socket_path=socket_path,
        flake_dir=flake_dir,
        checks=tuple(check) if check else None,
        output=output,
        force=force,
        attach_note=not no_note,
        verify_deps=verify_deps,
    )
    started = time.monotonic()

    def run_build() -> attest.BuildReport:
        try:
            return client.build(req, reporter)
        except attest.ChecksFailedError as e:
            record_build(flake_dir, e.report, started, reporter)
            raise

    report = guard(run_build)
    record_build(flake_dir, report, started, reporter)
    if json_out:
        emit_json(report.as_json())
    where = f"bundle {report.bundle_path}" if report.bundle_path else "no bundle"
    note = "; note on refs/notes/provenance" if report.note_attached else ""
    reporter.info(
        f"{len(report.checks)} check(s) proven at {report.commit[:12]} by the service "
        f"(keyid {report.keyid[:16]}): {where}{note}"
    )


def serve(
    socket_path: Annotated[
        Path, typer.Option("--socket", help="The Unix socket to listen on.")
    ] = Path("/run/provenance/socket"),
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="The service's mirrors, cache and key.")
    ] = Path("/var/lib/provenance"),
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The signing key.", show_default="STATE_DIR/key/provenance.key"),
    ] = None,
    socket_mode: Annotated[
        str, typer.Option("--socket-mode", help="Octal mode of the socket (who may ask).")
    ] = "666",
    socket_group: Annotated[
        str | None, typer.Option("--socket-group", help="Group of the socket (with mode 660).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Requests built at once; others wait.")
    ] = 4,
    keep_checkouts: Annotated[
        int, typer.Option("--keep-checkouts", min=1, help="Work trees kept per repository.")
    ] = 32,
    setup: Annotated[
        bool,
        typer.Option(
            "--setup", help="As root: create the service's user, state directory and key; exit."
        ),
    ] = False,
    user: Annotated[
        str, typer.Option("--user", help="With --setup: the service's user name.")
    ] = "provenance",
    uid: Annotated[
        int | None,
        typer.Option("--uid", min=1, help="With --setup: the new user's uid (and group id)."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Run the attestation service: build and sign other users' commits with a key they cannot read.

    Run it as its own user (`--setup` makes one). Agents then run
    `provenance build --service SOCKET` (or set PROVENANCE_SERVICE): the same command and
    output, but the commit is fetched into the service's mirror, built through the
    nix-daemon in the service's own environment, and signed with the service's key, with
    trustTier `isolated`. Stops on SIGTERM. See docs/service.md.
    """
    import grp  # noqa: PLC0415

    from provenance.service import server  # noqa: PLC0415
    from provenance.service import setup as setup_mod  # noqa: PLC0415

    if setup:
        done = guard(lambda: setup_mod.setup(user, state_dir, socket_path, uid))
        if json_out:
            emit_json(done.as_json())
        made = "created" if done.created_user else "kept"
        typer.echo(
            f"user {done.user} (uid {done.uid}): {made}; key {done.key_path} "
            f"({'created' if done.created_key else 'kept'}), keyid {done.keyid}\n"
            f"start it:  runuser -u {done.user} -- provenance serve --socket {done.socket_path}"
            f" --state-dir {done.state_dir}\n"
            f"trust it:  provenance trust add build-service {done.pub_path} --service\n"
            f"use it:    export PROVENANCE_SERVICE={done.socket_path}; provenance build\n"
            f"(with Nix's daemon, add `trusted-users = {done.user}` to nix.conf so that the "
            "service's sandbox options are in force; docs/service.md)",
            err=True,
        )
        return
    try:
        mode = int(socket_mode, 8)
    except ValueError:
        typer.echo(f"error: --socket-mode {socket_mode!r} is not an octal mode", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    gid = None
    if socket_group is not None:
        try:
            gid = grp.getgrnam(socket_group).gr_gid
        except KeyError:
            typer.echo(f"error: no group {socket_group!r}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None
    cfg = server.ServeConfig(
        socket_path=socket_path.absolute(),
        state_dir=state_dir.absolute(),
        key_path=(key or state_dir / "key" / "provenance.key").absolute(),
        socket_mode=mode,
        socket_group=gid,
        workers=workers,
        keep_checkouts=keep_checkouts,
    )
    guard(lambda: server.serve(cfg, lambda line: typer.echo(f"serve: {line}", err=True)))
