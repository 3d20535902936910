"""The entry point: start the evaluation a hot command will ask for, then run the CLI.

`build`, `verify` and `gate` each wait on one `nix eval` of the checks at HEAD (100 ms
and more) after Python has imported typer, the CLI and the job (about 120 ms). Both
fixed costs are unavoidable; paid one after the other they make most of a cache hit's
or a gate's time. So before importing any of that, this module reads what the command
line says about the flake, asks git for HEAD (one process), and starts exactly the
`nix eval` the command will run (doors/proc.py `start_ahead`), on the other core,
while the imports go on.

Nothing here decides anything. The command runs as it always does; its eval adopts
the started process only when the argv, environment and directory are the very ones
it would have used (so the answer is the one it would have got by starting it itself);
otherwise it starts its own, and the one started here is killed at exit. An argv this
reader does not fully understand (an unknown option, `--`, `--help`), a `--rev` other
than HEAD, `--service` or a work tree without a commit starts nothing. The option
tables below are the commands' own (tests/unit/test_launch.py compares them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Options taking a value, and flags, of each command that evaluates at HEAD.
VALUE_OPTIONS = {
    "build": {"--key", "--check", "--output", "-o", "--closure", "--service"},
    "gate": {
        "--rev", "--trusted-key", "--policy", "--policy-ref", "--require", "--remote",
        "--search-depth", "--base",
    },
    "verify": {
        "--trusted-key", "--policy", "--flake", "--rev", "--check", "--store",
        "--substituters", "--trusted-public-keys", "--sign-with", "--output", "-o", "--base",
    },
}  # fmt: skip
FLAGS = {
    "build": {
        "--force", "--allow-dirty", "--no-note", "--verify-deps", "--json", "--quiet", "-q",
        "--verbose", "-v",
    },
    "gate": {"--no-fetch", "--json", "--verbose", "-v"},
    "verify": {"--rebuild", "--in-place", "--no-note", "--json", "--quiet", "-q", "--verbose", "-v"},
}  # fmt: skip


def main() -> None:
    """The `provenance` console script."""
    started = os.environ.get("PROVENANCE_NO_AHEAD") != "1" and start(sys.argv[1:])
    from provenance.cli import main as cli_main  # noqa: PLC0415 - after the start, on purpose

    if started:
        # SIGTERM (a timeout, a cancelled CI job) must exit through atexit, which kills
        # what was started: it has its own process group, which a signal to ours misses.
        from provenance.cli.common import exit_on_sigterm  # noqa: PLC0415

        exit_on_sigterm()

    cli_main()


def parse(command: str, args: list[str]) -> tuple[list[str], dict[str, list[str]]] | None:
    """(positionals, option -> values) as click reads `args`, or None when unsure."""
    values, flags = VALUE_OPTIONS[command], FLAGS[command]
    positionals: list[str] = []
    opts: dict[str, list[str]] = {}
    it = iter(args)
    for arg in it:
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            if name not in values:
                return None
            opts.setdefault(name, []).append(value)
        elif arg.startswith("-") and arg != "-":
            if arg in flags:
                opts.setdefault(arg, []).append("")
            elif arg in values:
                given = next(it, None)
                if given is None:
                    return None
                opts.setdefault(arg, []).append(given)
            else:  # --help, --, -qv, an unknown or misspelt option: the CLI will say
                return None
        else:
            positionals.append(arg)
    return positionals, opts


def start(argv: list[str]) -> bool:
    """Start the hot command's eval ahead; True when one was started. Never raises."""
    if not argv or argv[0] not in VALUE_OPTIONS:
        return False
    try:
        return _start(argv[0], argv[1:])
    except Exception:  # not a repository, no commit, a symlink loop (RuntimeError): a guess
        return False  # that failed starts nothing, and the command meets it under its own rules


def _start(command: str, args: list[str]) -> bool:
    parsed = parse(command, args)
    if parsed is None:
        return False
    positionals, opts = parsed
    if opts.get("--rev", ["HEAD"]) != ["HEAD"]:
        return False
    if command == "verify":
        flake_dir, names = Path(opts.get("--flake", ["."])[-1]), None
    elif len(positionals) > 1:
        return False
    else:
        flake_dir = Path(positionals[0] if positionals else ".")
        names = opts.get("--check" if command == "build" else "--require") or None
    if command == "build" and ("--service" in opts or os.environ.get("PROVENANCE_SERVICE")):
        return False  # the service evaluates, not this process
    # The door's argv builders, not the door: the runner and its parsers (~20 ms of
    # imports) would delay the start. The same argv either way (nixargv.py).
    from provenance.doors import nixargv, proc  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415
    from provenance.formats.uris import flake_subdir, git_file_flake  # noqa: PLC0415

    # As the commands compute them (gate.py, attest/pipeline.py, verify/pipeline.py).
    flake_dir = flake_dir.resolve()
    if not (flake_dir / "flake.nix").is_file():
        return False
    top, commit = Git(flake_dir).head()
    if command == "gate":
        top = top.resolve()
    subdir = flake_subdir(flake_dir, top)
    nix_bin, system = nixargv.default_nix_bin(), nixargv.current_system()
    ref = git_file_flake(str(top), rev=commit, subdir=subdir)
    # A clean tree's evaluation; a dirty one's differs, and adopts nothing.
    args = (
        nixargv.pinned(ref, subdir, system, names)
        if command == "build"
        else nixargv.checks(ref, system, names)
    )
    started = proc.start_ahead(nixargv.command(nix_bin, args, nixargv.PURE_EVAL))
    if command == "build" and "--force" in opts:  # a build is certain: it asks the version
        proc.start_ahead(nixargv.command(nix_bin, nixargv.version()))
    return started
