"""The local-first loop (docs/ci.md): `gate` (may CI skip the checks?), `notes fetch|push`
(move the attestation notes) and `hooks install|uninstall` (attest each commit)."""

from __future__ import annotations

import os
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

notes_app = typer.Typer(
    help="Move the attestation notes (refs/notes/provenance) to and from a remote.",
    no_args_is_help=True,
)
Repo = Annotated[Path, typer.Option("--repo", "-C", help="Repository (or flake) directory.")]


@notes_app.command("fetch")
def notes_fetch(
    remote: Annotated[str, typer.Argument(help="Remote name or URL.")] = "origin",
    repo: Repo = Path(),
) -> None:
    """Fetch the remote's notes and union them into ours (lines are never lost)."""
    from provenance.doors import notes  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415

    res = guard(lambda: notes.fetch(Git(repo), remote))
    shown = f"unioned, {res.gained} note(s) gained lines" if res.found else "none"
    typer.echo(f"notes: {shown} from {remote}", err=True)


@notes_app.command("push")
def notes_push(
    remote: Annotated[str, typer.Argument(help="Remote name or URL.")] = "origin",
    repo: Repo = Path(),
) -> None:
    """Fetch-union-push our notes to the remote, retrying when someone pushed meanwhile."""
    from provenance.doors import notes  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415

    res = guard(lambda: notes.push(Git(repo), remote))
    if res.found:
        typer.echo(f"notes: pushed to {remote} (attempt {res.attempts})", err=True)
    else:
        typer.echo(f"notes: nothing to push to {remote}", err=True)


def gate(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
    rev: Annotated[str, typer.Option("--rev", help="Revision to decide for.")] = "HEAD",
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Trusted public key (repeatable); from a CI secret."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy file outside the tree under test.")
    ] = None,
    policy_ref: Annotated[
        str | None,
        typer.Option(
            "--policy-ref",
            help="Read provenance.toml from this trusted ref: a full ref name or a remote-tracking"
            " branch nothing else is named like.",
            show_default="refs/remotes/origin/<target branch> from $GITHUB_BASE_REF,"
            " $CI_MERGE_REQUEST_TARGET_BRANCH_NAME or $CI_DEFAULT_BRANCH",
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require", help="Check that must be proven (repeatable).", show_default="all"
        ),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option("--remote", help="Remote to fetch notes from.", show_default="origin"),
    ] = None,
    no_fetch: Annotated[bool, typer.Option("--no-fetch", help="Use the local notes only.")] = False,
    search_depth: Annotated[
        int,
        typer.Option(
            "--search-depth", min=1, help="Commits searched for the same drvPath, REV included."
        ),
    ] = 50,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Compare tests and protected paths with this trusted ref (the target branch, as"
            " a full ref name); unapproved weakenings make CI run.",
            show_default="no comparison",
        ),
    ] = None,
    json_out: JsonOut = False,
    verbose: Verbose = False,
) -> None:
    """Decide whether CI may skip the checks (skip=true|false, for CI).

    skip=true only when every required check has a valid attestation from a trusted key
    for exactly its drvPath at REV (or an ancestor within --search-depth commits that
    defines the checks the same way: docs/architecture.md).

    Fails safe: any doubt or error prints skip=false and exits 0, so CI simply runs.
    Only bad usage exits 2 (no trust given; an unreadable key or policy; a key or policy
    inside the tree under test). Writes skip= and reason= to $GITHUB_OUTPUT and a table to
    $GITHUB_STEP_SUMMARY when those are set.

    With --base, tests removed, newly skipped or failing, a removed check and changes to
    protected paths (the review table of the base's provenance.toml) need a reviewer's approval
    (`provenance approve`) before CI may skip: docs/review.md.
    """
    setup_logging(verbose)
    from provenance.ci import gate as g  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415

    keys_given = list(trusted_key or [])
    given = sum(bool(x) for x in (keys_given, policy, policy_ref))
    if given > 1:
        fail("pass one of --trusted-key, --policy, --policy-ref")
    trust = guard(lambda: g.resolve_trust(flake_dir, keys_given, policy))
    rules = review_rules(policy) if base is not None and policy is not None else None
    if trust is None and policy_ref is None:
        branch = g.target_branch(os.environ)
        if branch is None:
            fail(
                "no trust given",
                "pass --trusted-key PUB, --policy FILE or --policy-ref REF;"
                " on CI the target branch is used when the CI names it",
            )
        # The full name: a tag or local branch called origin/<branch> cannot shadow it.
        policy_ref = f"refs/remotes/{remote or 'origin'}/{branch}"
    req = g.GateRequest(
        flake_dir=flake_dir,
        rev=rev,
        policy=trust,
        policy_ref=policy_ref,
        required=tuple(require) if require else None,
        remote=remote,
        fetch=not no_fetch,
        search_depth=search_depth,
        base=base,
        review_policy=rules,
    )
    started = time.monotonic()
    report = g.gate(req, Nix(default_nix_bin()))
    record(
        flake_dir,
        "gate",
        ok=not report.errored,  # exit 0 and a decision: skip=false is an answer, not a failure
        commit=report.commit,
        report=report,
        bundles=[],
        started=started,
        reporter=StderrReporter(),
    )
    for problem in g.write_ci_files(report):
        typer.echo(f"warning: {problem}", err=True)
    if json_out:
        emit_json(report.as_json())
    typer.echo(g.text(report), err=True)


hooks_app = typer.Typer(
    help="Opt-in git hooks: attest each commit, push notes.", no_args_is_help=True
)


@hooks_app.command("install")
def hooks_install(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
) -> None:
    """Add marked blocks to pre-commit, post-commit and pre-push (existing hooks are kept).

    post-commit runs `provenance build` in the background with $PROVENANCE_KEY or
    `git config provenance.key`, skipping commits made with --no-verify; pre-push runs
    `provenance notes push`. Neither can fail your commit or push.
    """
    from provenance.ci import hooks  # noqa: PLC0415

    for c in guard(lambda: hooks.install(flake_dir)):
        typer.echo(f"{c.hook}: {c.action} ({c.path})", err=True)
    if not guard(lambda: hooks.signing_key_configured(flake_dir)):
        typer.echo(
            "warning: no signing key is configured, so post-commit will attest nothing; "
            "set one with `git config provenance.key PATH` or export PROVENANCE_KEY",
            err=True,
        )


@hooks_app.command("uninstall")
def hooks_uninstall(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
) -> None:
    """Remove exactly the blocks `hooks install` added (and a hook file left empty)."""
    from provenance.ci import hooks  # noqa: PLC0415

    changes = guard(lambda: hooks.uninstall(flake_dir))
    for c in changes:
        typer.echo(f"{c.hook}: {c.action} ({c.path})", err=True)
    if not changes:
        typer.echo("no provenance hooks installed", err=True)
