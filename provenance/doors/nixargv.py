"""The argv of nix calls, apart from the runner (nix.py) that runs them and the parsers
(nixparse.py) that read them: the flags every call carries, the evaluation's arguments,
the binary and the system double. Light on purpose: launch.py builds the first call of
a hot command from here before the runner is imported, and the runner builds it from
here too, so that the two are the same argv (tests/integration/test_launch.py).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping

from provenance.doors import selection

# Never --impure: impure builtins (getEnv, currentTime, host files) would make the
# drvPath depend on the machine. Flakes already evaluate purely without --impure
# (checked on 2.8, even with `pure-eval = false`); the option pins it.
PURE_EVAL = {"pure-eval": "true"}


def default_nix_bin() -> str:
    return os.environ.get("PROVENANCE_NIX", "nix")


def current_system() -> str:
    """Nix's system double for this host, without spending a nix call on it."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    kernel = platform.system().lower()
    return f"{machine}-{kernel}"


def command(
    nix_bin: str,
    args: Iterable[str],
    options: Mapping[str, str] | None = None,
    store: str | None = None,
) -> list[str]:
    """`nix_bin` with the experimental features, `--option`s and `--store`, then `args`."""
    cmd = [nix_bin, "--extra-experimental-features", "nix-command flakes"]
    for k, v in (options or {}).items():
        cmd += ["--option", k, v]
    if store:
        cmd += ["--store", store]
    return cmd + list(args)


def evaluation(args: list[str]) -> list[str]:
    """An evaluation's arguments (run with PURE_EVAL): JSON out, the lock file as it is."""
    return ["eval", "--json", "--no-update-lock-file", *args]


def checks(ref: str, system: str, names: list[str] | None) -> list[str]:
    """`eval_checks`'s arguments: the installable's `checks`, selected by select-checks.nix."""
    return evaluation([f"{ref}#checks", "--apply", selection.apply_expression(system, names)])


def pinned(ref: str, subdir: str, system: str, names: list[str] | None) -> list[str]:
    """`eval_pinned`'s arguments: one `--expr` over the locked ref (selection.py says why)."""
    return evaluation(["--expr", selection.pinned_expression(ref, subdir, system, names)])


def version() -> list[str]:
    return ["--version"]
