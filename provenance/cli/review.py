"""Review commands (issue 16, docs/review.md and docs/show.md): `approve` (a reviewer
accepts a commit's test deltas and protected-path changes against its base) and `show`
(what is attested for a commit, for a person or an agent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from provenance.cli.common import JsonOut, emit_json, guard_json


def _default_base(flake: Path) -> str:
    """The branch a change is headed for: what CI names, else origin/HEAD."""
    from provenance.ci.gate import target_branch  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415
    from provenance.errors import UsageError  # noqa: PLC0415

    branch = target_branch(os.environ)
    if branch:
        return f"refs/remotes/origin/{branch}"
    if Git(flake).ref_exists("refs/remotes/origin/HEAD"):
        return "refs/remotes/origin/HEAD"
    msg = "no base: CI names no target branch and there is no origin/HEAD"
    raise UsageError(msg, "pass the branch the change is headed for with --base REF")


def _show_trust(flake: Path, trusted_key: list[Path], policy: Path | None) -> tuple[Any, Any]:
    """Build keys and reviewer keys for show/approve: --trusted-key, --policy, the repo's
    provenance.toml, or none (then nothing is trusted and show says so)."""
    from provenance.errors import UsageError  # noqa: PLC0415
    from provenance.policy import resolve as policy_mod  # noqa: PLC0415
    from provenance.policy.trust import POLICY_FILE, TrustPolicy  # noqa: PLC0415
    from provenance.review import policy as review_policy  # noqa: PLC0415

    try:
        trust = policy_mod.resolve(trusted_key, policy, [flake.resolve()])
    except UsageError:
        if trusted_key or policy:
            raise
        return TrustPolicy((), source="none (no --trusted-key, --policy or provenance.toml)"), None
    source = policy or (flake.resolve() / POLICY_FILE if not trusted_key else None)
    rules = review_policy.load(source) if source is not None and source.is_file() else None
    return trust, rules


def approve(
    rev: Annotated[str, typer.Argument(help="The commit whose changes you accept.")] = "HEAD",
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="Your reviewer signing key (one of review.reviewers in provenance.toml)."
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="The branch the change is headed for.",
            show_default="refs/remotes/origin/<target branch> when CI names one,"
            " else refs/remotes/origin/HEAD",
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the changes are acceptable (signed, shown).")
    ] = "",
    flake: Annotated[
        Path, typer.Option("--flake", help="Flake directory in the git repo.")
    ] = Path(),
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Whose test results count (repeatable)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="Trust policy file.", show_default="the repo's provenance.toml"
        ),
    ] = None,
    no_note: Annotated[
        bool, typer.Option("--no-note", help="Print it; attach no git note.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Sign that you accept REV's test deltas and protected-path changes against its base.

    Lists exactly what `gate --base` would find (tests removed, newly skipped or failing,
    fewer tests, a removed check, changed protected paths) and signs that list; the gate
    counts the approval for those items only. Exit 2 when there is nothing to approve,
    3 when the comparison is in doubt (e.g. the base's tests are not attested).
    """
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.errors import UsageError  # noqa: PLC0415
    from provenance.formats import keys  # noqa: PLC0415
    from provenance.review import approve as approve_mod  # noqa: PLC0415

    def run() -> Any:
        if key is None:
            msg = "no reviewer key"
            raise UsageError(msg, "pass --key REVIEWER.key")
        signer = keys.load_signer(key)
        trust, rules = _show_trust(flake, list(trusted_key or []), policy)
        req = approve_mod.ApproveRequest(
            flake_dir=flake,
            signer=signer,
            trust=trust,
            base=base or _default_base(flake),
            rev=rev,
            reason=reason,
            review_policy=None if policy is None else rules,
            attach_note=not no_note,
        )
        return approve_mod.approve(req, Nix(default_nix_bin()))

    report = guard_json(run, json_out)
    if json_out:
        emit_json(report.as_json())
    review = report.review
    typer.echo(f"approved {report.commit[:12]} against {review.base.ref}:", err=True)
    for item in review.items:
        typer.echo(f"  {item.describe()}", err=True)
    for w in report.warnings:
        typer.echo(f"warning: {w}", err=True)
    if report.note_attached:
        typer.echo("note on refs/notes/provenance", err=True)
    else:
        typer.echo(report.line)


def show(
    rev: Annotated[str, typer.Argument(help="The commit to show.")] = "HEAD",
    flake: Annotated[
        Path, typer.Option("--flake", help="Flake directory in the git repo.")
    ] = Path(),
    base: Annotated[
        str | None,
        typer.Option("--base", help="Also compare tests and protected paths with this branch."),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Trusted public key (repeatable)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="Trust policy file.", show_default="the repo's provenance.toml"
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """What is attested for REV: per check its drvPath, outputs, tests, signers (policy
    names and tiers), reuse, verification summaries; approvals; deltas with --base.

    Text on stdout (colour on a terminal, none when piped or with NO_COLOR); --json is
    the stable schema of docs/show.md, also for errors. Exit 0 whatever is proven.
    """
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.show import facts, render  # noqa: PLC0415

    def run() -> Any:
        trust, rules = _show_trust(flake, list(trusted_key or []), policy)
        # With --base the comparison takes the base's [review], unless --policy stands in.
        req = facts.ShowRequest(flake, rev, trust, rules, base, rules if policy else None)
        return facts.show(req, Nix(default_nix_bin()))

    report = guard_json(run, json_out)
    if json_out:
        typer.echo(render.to_json(report))
        return
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    typer.echo(render.text(report, colour=colour), nl=False)
