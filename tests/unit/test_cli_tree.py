"""The CLI's surface is a contract (docs/cli.md, CI scripts, git hooks): every command,
option, default and help text is pinned against a committed snapshot, so moving code
around inside provenance/cli/ cannot change what users type or read.

After a deliberate change to the CLI, rewrite the snapshot and review its diff:
    .venv/bin/python -m tests.unit.test_cli_tree
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer.main
from typer.models import DefaultPlaceholder

from provenance.cli import app

SNAPSHOT = Path(__file__).parent.parent / "fixtures" / "cli" / "tree.json"

# Everything about a parameter that reaches the user: how it is spelled, parsed, defaulted,
# read from the environment and described in --help.
PARAM_FIELDS = (
    "name", "opts", "secondary_opts", "required", "nargs", "multiple", "default", "envvar",
    "help", "is_flag", "count", "hidden", "show_default", "show_envvar", "metavar",
    "rich_help_panel",
)  # fmt: skip
COMMAND_FIELDS = (
    "help", "short_help", "epilog", "options_metavar", "no_args_is_help", "hidden",
    "deprecated", "add_help_option", "rich_help_panel", "invoke_without_command",
    "context_settings",
)  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, DefaultPlaceholder):  # typer's "not set, so this default"
        return {"typer default": _plain(value.value)}
    if isinstance(value, Path):
        return f"Path({str(value)!r})"
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _type(t: Any) -> dict[str, Any]:
    attrs = {k: _plain(v) for k, v in sorted(vars(t).items()) if not k.startswith("_")}
    return {"class": type(t).__name__, **attrs}


def _describe(cmd: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: _plain(getattr(cmd, k, None)) for k in COMMAND_FIELDS}
    out["params"] = [
        {
            "kind": type(p).__name__,
            **{k: _plain(getattr(p, k, None)) for k in PARAM_FIELDS},
            "type": _type(p.type),
        }
        for p in cmd.params
    ]
    # A list, not a dict: the order is the order --help shows.
    subs = getattr(cmd, "commands", None)
    if subs is not None:
        out["commands"] = [{"name": n, **_describe(c)} for n, c in subs.items()]
    return out


def tree() -> str:
    return json.dumps(_describe(typer.main.get_command(app)), indent=1) + "\n"


def test_commands_and_options_match_the_snapshot() -> None:
    assert tree() == SNAPSHOT.read_text(), (
        "the CLI surface changed; if that was meant, run "
        "`.venv/bin/python -m tests.unit.test_cli_tree` and review the diff"
    )


def test_the_snapshot_covers_every_command() -> None:
    # Guards the guard: a describer that silently dropped subcommands would pin nothing.
    names = []

    def walk(node: dict[str, Any], path: str) -> None:
        for sub in node.get("commands", []):
            names.append(f"{path}{sub['name']}")
            walk(sub, f"{path}{sub['name']} ")

    walk(json.loads(SNAPSHOT.read_text()), "")
    assert names == [
        "keygen", "build", "example", "verify", "publish", "gate", "approve", "show", "serve",
        "trust", "trust add", "trust list", "trust remove", "trust threshold",
        "audit", "audit verify", "audit summary", "audit report", "audit aggregate",
        "audit check",
        "notes", "notes fetch", "notes push",
        "hooks", "hooks install", "hooks uninstall",
    ]  # fmt: skip


if __name__ == "__main__":
    SNAPSHOT.write_text(tree())
    print(f"wrote {SNAPSHOT}")
