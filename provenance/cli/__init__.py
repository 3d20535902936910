"""Thin typer CLI: parse options, call one API function, render, map errors to exit codes.

This package is the only place that exits. Humans read stderr; `--json` output goes to stdout.
Exit codes (docs/cli.md): 0 ok, 1 failed check or verification, 2 bad usage or input,
3 refused (cannot be attested honestly), 4 environment (nix/git missing or failing).

This module builds `app` and wires in the commands, one module per command group: keys
(keygen, trust), build (build, example), verify, publish, ci (gate, notes, hooks), review
(approve, show), serve (the attestation service), audit; common
holds what they share. The jobs themselves are imported inside each command, so
`--help` and every other command stay fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from provenance.cli import audit, build, ci, keys, publish, review, serve, verify
from provenance.cli.common import ProvenanceGroup

app = typer.Typer(
    cls=ProvenanceGroup,
    name="provenance",
    help="Signed, drv-hash-bound attestations for Nix flake checks.\n\n"
    "build: attest your checks; verify: check a bundle; gate: let CI skip proven work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registered here, in one place, because this order is the order `--help` lists them
# (commands first, then groups); tests/unit/test_cli_tree.py pins it.
app.command()(keys.keygen)
app.command()(build.build)
app.command()(build.example)
app.command()(verify.verify)
app.command()(publish.publish)
app.command()(ci.gate)
app.command()(review.approve)
app.command()(review.show)
app.command()(serve.serve)
app.add_typer(keys.trust_app, name="trust")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(ci.notes_app, name="notes")
app.add_typer(ci.hooks_app, name="hooks")


# The commands run most (an agent's `build` after every change, CI's `gate` on every push,
# `verify`) are parsed by a group holding only that command: typer reads the signature of
# every command it registers, about 35 ms for all of them on each run, and one command's
# options, help and errors do not depend on the others (tests/unit/test_cli_fast.py).
_HOT: dict[str, Callable[..., None]] = {
    "build": build.build,
    "verify": verify.verify,
    "gate": ci.gate,
}


def _no_options() -> None:
    """The group of one hot command: no options of its own, as `app` has none."""


def main() -> None:
    hot = _HOT.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if hot is None:
        app()
        return
    one = typer.Typer(
        cls=ProvenanceGroup,
        name="provenance",
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    one.callback()(_no_options)
    one.command()(hot)
    one()
