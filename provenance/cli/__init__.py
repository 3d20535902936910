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


def main() -> None:
    app()
