"""What a build's Nix environment must be for its claim to hold, and what a statement must
have recorded for `gate` and `verify` to believe it.

One rule per Nix setting that can make a claim false (`SAFE`: is this value harmless?
`WHY`: what the setting would do), applied twice: nixenv.py holds our own builds to it
when it reads their settings back, and `recorded_problem` holds every statement to it
when gate and verify read what the statement recorded. That second use, with the
`[environment]` allow-list of provenance.toml (`EnvironmentPolicy`), is policy about
other people's statements and needs no Nix at all, so it lives apart from nixenv.py,
which forces options on a live nix (docs/verify.md, "What a signature proves").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import UsageError

# How a statement's settings were enforced (internalParameters.nix.sandboxEnforcement).
LOCAL_STORE, TRUSTED_DAEMON, DAEMON_CONF = "local-store", "daemon-trusted-user", "daemon-nix-conf"
ENFORCEMENTS = (LOCAL_STORE, TRUSTED_DAEMON, DAEMON_CONF)
# internalParameters.outputCheck / dependencyOutputs values a statement may carry.
OUTPUT_CHECKS = ("built", "rebuilt-and-compared")
DEPENDENCY_CHECKS = ("taken-from-store", "verified-local-or-signed")
# The name of the build hook nixenv.decline_hook() writes: the one hook we accept as safe.
DECLINE_HOOK_NAME = "provenance-decline-build-hook"

# Recorded in internalParameters.nix.settings (sandbox* have fields of their own), and
# required there by gate and verify: every Nix we support has these.
REQUIRED = (
    "builders",
    "build-hook",
    "pre-build-hook",
    "post-build-hook",
    "diff-hook",
    "run-diff-hook",
    "allowed-impure-host-deps",
    "plugin-files",
    "substitute",
)

# -- the rule for each setting that can make a claim false --------------------------------


def empty(value: Any) -> bool:
    return value in ("", None, [], {}, ())


def _declines(value: Any) -> bool:
    """A build-hook that can only decline: none, ours, or Nix's own with no builders."""
    words = value if isinstance(value, list) else str(value or "").split()
    if not words:
        return True
    first = Path(str(words[0])).name
    # Nix's own build-remote declines every build when `builders` is empty, which we
    # require next to it (2.8: .../libexec/nix/build-remote; 2.17+: `nix __build-remote`).
    return first in (DECLINE_HOOK_NAME, "build-remote") or words[1:] == ["__build-remote"]


# Is a recorded (or read-back) value one that cannot make a claim false?
SAFE: dict[str, Callable[[Any], bool]] = {
    "builders": lambda v: v == "",
    "build-hook": _declines,
    "external-builders": empty,
    "pre-build-hook": empty,
    "post-build-hook": empty,
    "diff-hook": empty,
    "run-diff-hook": lambda v: v is False,
    "allowed-impure-host-deps": empty,
    "impure-env": empty,
    "plugin-files": empty,
    "substitute": lambda v: v is False,
}
WHY = {
    "builders": "it sends builds to other machines",
    "build-hook": "it runs a program that may build elsewhere and register any outputs",
    "external-builders": "it runs programs that build instead of Nix's sandbox",
    "pre-build-hook": "it runs a program that can add host paths to the sandbox",
    "post-build-hook": "it runs a program after each build that can rewrite the outputs",
    "diff-hook": "it runs a program on the build results",
    "run-diff-hook": "it runs the diff hook on the build results",
    "allowed-impure-host-deps": "it lets derivations mount host paths into the sandbox",
    "impure-env": "it passes host environment variables into builds",
    "plugin-files": "it loads code into Nix itself",
    "substitute": "the derivation itself could be downloaded instead of built",
}


# -- what gate and verify require a statement to have recorded ---------------------------


@dataclass(frozen=True)
class EnvironmentPolicy:
    """`[environment]` of provenance.toml: what a statement's recorded environment may be.

    [environment]
    allowed-sandbox-paths = ["/bin/sh=/usr/bin/bash-static"]   # default: none
    sandbox-enforcement = ["local-store", "daemon-trusted-user"]  # default: all three
    """

    allowed_sandbox_paths: frozenset[str] | None = frozenset()  # None: any (cache hits)
    enforcement: frozenset[str] = frozenset(ENFORCEMENTS)

    @classmethod
    def from_table(cls, table: Any, where: str) -> EnvironmentPolicy:
        if table is None:
            return cls()
        if not isinstance(table, dict) or set(table) - {
            "allowed-sandbox-paths",
            "sandbox-enforcement",
        }:
            msg = f"{where}: [environment] takes allowed-sandbox-paths and sandbox-enforcement"
            raise UsageError(msg, "see docs/verify.md")
        paths = table.get("allowed-sandbox-paths", [])
        kinds = table.get("sandbox-enforcement", list(ENFORCEMENTS))
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            msg = f"{where}: environment.allowed-sandbox-paths must be a list of strings"
            raise UsageError(msg)
        if (
            not isinstance(kinds, list)
            or not all(isinstance(k, str) for k in kinds)  # set() of a list raises
            or not set(kinds) <= set(ENFORCEMENTS)
            or not kinds
        ):
            msg = f"{where}: environment.sandbox-enforcement must list some of {', '.join(ENFORCEMENTS)}"
            raise UsageError(msg)
        return cls(frozenset(paths), frozenset(kinds))


_NIX = "internalParameters.nix"


def recorded_problem(internal: Mapping[str, Any], policy: EnvironmentPolicy) -> str | None:
    """Why a statement's recorded build environment does not prove its claim, or None.

    `internal` is the statement's internalParameters. The answer names the field, so
    `verify` and `gate` can say what to fix.
    """
    nixp = internal.get("nix")
    if not isinstance(nixp, dict):
        return f"{_NIX} is missing"
    if nixp.get("sandbox") is not True:
        return f"{_NIX}.sandbox is {nixp.get('sandbox')!r}, not true: built outside the sandbox"
    if nixp.get("sandboxFallback") is not False:
        return f"{_NIX}.sandboxFallback is {nixp.get('sandboxFallback')!r}, not false"
    kind = nixp.get("sandboxEnforcement")
    if not isinstance(kind, str) or kind not in policy.enforcement:  # a list is unhashable
        allowed = ", ".join(sorted(policy.enforcement))
        return f"{_NIX}.sandboxEnforcement is {kind!r}, not one of {allowed}"
    paths = nixp.get("sandboxPaths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return f"{_NIX}.sandboxPaths is missing or malformed"
    if policy.allowed_sandbox_paths is not None:
        extra = sorted(set(paths) - policy.allowed_sandbox_paths)
        if extra:
            return (
                f"{_NIX}.sandboxPaths has {', '.join(extra)}: host paths in the sandbox "
                "(allow them in provenance.toml [environment] allowed-sandbox-paths)"
            )
    settings = nixp.get("settings")
    if not isinstance(settings, dict):
        return (
            f"{_NIX}.settings is missing: the statement does not record the Nix settings "
            "that can run code around a build (made by an older provenance?)"
        )
    for name in REQUIRED:
        if name not in settings:
            return f"{_NIX}.settings.{name} is not recorded"
    for name, value in sorted(settings.items()):
        if name in SAFE and not SAFE[name](value):
            return f"{_NIX}.settings.{name} is {value!r}: {WHY[name]}"
    if internal.get("outputCheck") not in OUTPUT_CHECKS:
        return (
            f"internalParameters.outputCheck {internal.get('outputCheck')!r} is not a known check"
        )
    if internal.get("dependencyOutputs") not in DEPENDENCY_CHECKS:
        return (
            f"internalParameters.dependencyOutputs {internal.get('dependencyOutputs')!r} "
            "is not a known value"
        )
    return None
