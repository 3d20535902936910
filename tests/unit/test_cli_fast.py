"""`build`, `verify` and `gate` are parsed by a group holding only that command
(cli/__init__.py: about 35 ms less start-up on every run). Nothing a user sees may differ
from the whole app's: help, usage errors and exit codes are compared here, run for run."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN = "import sys; sys.argv = ['provenance', *sys.argv[1:]]; from provenance.cli import {}; {}()"


def _both(args: list[str]) -> tuple[subprocess.CompletedProcess[str], ...]:
    return tuple(
        subprocess.run(
            [sys.executable, "-c", RUN.format(entry, entry), *args],
            capture_output=True,
            text=True,
            env={"COLUMNS": "100", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        )
        for entry in ("main", "app")
    )


@pytest.mark.parametrize(
    "args",
    [
        ["build", "--help"],
        ["verify", "--help"],
        ["gate", "--help"],
        ["build", "--no-such-option"],
        ["gate", "--json", "--no-such-option"],
        ["verify", "--rebuild", "--store"],  # an option without its value
        ["build", "--closure"],
        ["gate", "a", "b"],  # one argument too many
    ],
)
def test_a_hot_command_alone_says_what_the_whole_app_says(args: list[str]) -> None:
    fast, full = _both(args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )
    assert fast.stdout or fast.stderr  # something was compared


def test_other_commands_and_the_top_level_help_use_the_whole_app() -> None:
    for args in (["--help"], ["keygen", "--help"], ["audit", "--help"], ["nope"]):
        fast, full = _both(args)
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            full.returncode,
            full.stdout,
            full.stderr,
        )
