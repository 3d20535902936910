"""Key commands: `keygen` (make a signing key) and `trust add/list/remove/threshold` (the
trusted keys of provenance.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provenance.cli.common import JsonOut, emit_json, fail, guard
from provenance.text import printable


def keygen(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory for provenance.key and .pub.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="File names NAME.key and NAME.pub, so signers are told apart by name.",
            show_default="provenance",
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Create an Ed25519 signing key (PKCS#8 PEM, 0600) and its public key (SPKI PEM).

    The keyid is the hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
    """
    from provenance.formats import keys  # noqa: PLC0415 - keep `--help` and other commands lean

    key_path, pub_path, keyid = guard(lambda: keys.generate(out_dir, force=force, name=name))
    if json_out:
        emit_json({"key": str(key_path), "pub": str(pub_path), "keyid": keyid})
    typer.echo(f"wrote {key_path} (keep secret) and {pub_path}\nkeyid {keyid}", err=True)


trust_app = typer.Typer(
    help="Manage the trust policy file (provenance.toml).", no_args_is_help=True
)


@trust_app.command("add")
def trust_add(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. alice or ci.")],
    pub: Annotated[Path, typer.Argument(help="The Ed25519 public key (PEM) to trust.")],
    policy: Annotated[Path, typer.Option("--policy", help="Policy file to write.")] = Path(
        "provenance.toml"
    ),
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Stop trusting the key after this date (YYYY-MM-DD)."),
    ] = None,
    reviewer: Annotated[
        bool,
        typer.Option(
            "--reviewer",
            help="A reviewer key (review.reviewers, for `provenance approve`), not a build key.",
        ),
    ] = False,
    service: Annotated[
        bool,
        typer.Option(
            "--service", help="An attestation service's key: its statements can be isolated."
        ),
    ] = False,
) -> None:
    """Trust PUB under NAME in the policy file (added or replaced; the rest is kept)."""
    import datetime as dt  # noqa: PLC0415

    from provenance.policy import trust  # noqa: PLC0415

    try:
        day = dt.date.fromisoformat(expires) if expires else None
    except ValueError:
        fail(f"--expires {expires!r} is not a YYYY-MM-DD date")
    if reviewer:
        from provenance.review import policy as review_policy  # noqa: PLC0415

        entry = guard(lambda: review_policy.add_reviewer(policy, name, pub, day))
        typer.echo(f"{policy}: {name} may approve (keyid {entry.key.keyid[:16]}...)", err=True)
        return
    entry = guard(lambda: trust.add_key(policy, name, pub, day, service=service))
    typer.echo(f"{policy}: trusting {name} (keyid {entry.key.keyid[:16]}...)", err=True)
    if day is not None and day < dt.datetime.now(dt.UTC).date():
        typer.echo(
            f"warning: --expires {day} is in the past: signatures by {name} will not count",
            err=True,
        )


PolicyFile = Annotated[Path, typer.Option("--policy", help="Policy file.", show_default=True)]


@trust_app.command("list")
def trust_list(policy: PolicyFile = Path("provenance.toml"), json_out: JsonOut = False) -> None:
    """Show the trusted keys (name, keyid, expiry) and the threshold."""
    import datetime as dt  # noqa: PLC0415

    from provenance.policy import trust  # noqa: PLC0415

    loaded = guard(lambda: trust.load_policy(policy))
    today = dt.datetime.now(dt.UTC).date()
    rows = [
        {
            "name": k.name,
            "keyid": k.key.keyid,
            "expires": k.expires.isoformat() if k.expires else None,
            "active": k.active(today),
        }
        for k in loaded.keys
    ]
    if json_out:
        emit_json({"policy": str(policy), "threshold": loaded.threshold, "keys": rows})
    for r in rows:
        until = f"  until {r['expires']}" if r["expires"] else ""
        state = "" if r["active"] else "  (expired: does not count)"
        typer.echo(printable(f"{r['name']}  {str(r['keyid'])[:16]}...{until}{state}"), err=True)
    typer.echo(f"threshold: {loaded.threshold} of {len(rows)} key(s)", err=True)


@trust_app.command("remove")
def trust_remove(
    name: Annotated[str, typer.Argument(help="The name of the key to stop trusting.")],
    policy: PolicyFile = Path("provenance.toml"),
) -> None:
    """Stop trusting key NAME (refused if the threshold could then not be met)."""
    from provenance.policy import trust  # noqa: PLC0415

    guard(lambda: trust.remove_key(policy, name))
    typer.echo(f"{policy}: no longer trusting {name}", err=True)


@trust_app.command("threshold")
def trust_threshold(
    count: Annotated[int, typer.Argument(help="How many distinct trusted signers must agree.")],
    policy: PolicyFile = Path("provenance.toml"),
) -> None:
    """Set how many distinct trusted signers must agree on a check (1 to the number of keys)."""
    from provenance.policy import trust  # noqa: PLC0415

    guard(lambda: trust.set_threshold(policy, count))
    typer.echo(f"{policy}: threshold {count}", err=True)
