"""Key commands: `keygen` (make a signing key) and `trust add` (trust a public key in
provenance.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provenance.cli.common import JsonOut, emit_json, guard
from provenance.errors import ExitCode


def keygen(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory for provenance.key and .pub.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Create an Ed25519 signing key (PKCS#8 PEM, 0600) and its public key (SPKI PEM).

    The keyid is the hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
    """
    from provenance.formats import keys  # noqa: PLC0415 - keep `--help` and other commands lean

    key_path, pub_path, keyid = guard(lambda: keys.generate(out_dir, force=force))
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
            help="A reviewer key ([review.reviewers], for `provenance approve`), not a build key.",
        ),
    ] = False,
) -> None:
    """Trust PUB under NAME in the policy file (added or replaced; the rest is kept)."""
    import datetime as dt  # noqa: PLC0415

    from provenance.policy import trust  # noqa: PLC0415

    try:
        day = dt.date.fromisoformat(expires) if expires else None
    except ValueError:
        typer.echo(f"error: --expires {expires!r} is not a YYYY-MM-DD date", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    if reviewer:
        from provenance.review import policy as review_policy  # noqa: PLC0415

        entry = guard(lambda: review_policy.add_reviewer(policy, name, pub, day))
        typer.echo(f"{policy}: {name} may approve (keyid {entry.key.keyid[:16]}...)", err=True)
        return
    entry = guard(lambda: trust.add_key(policy, name, pub, day))
    typer.echo(f"{policy}: trusting {name} (keyid {entry.key.keyid[:16]}...)", err=True)
