"""The Nix environment of every build we attest and every rebuild we verify.

The one place that answers "what environment did this build run in": what we force on
nix's command line, what we read back, what we refuse, what a statement records, and what
Nix says it did. The rule for each setting, and what `gate` and `verify` require a
statement to have recorded, are in environment.py (re-exported here; docs/verify.md,
"What a signature proves, and what it cannot").

Nix can run code around a build (build-hook, pre-build-hook, post-build-hook, diff-hook,
external-builders, plugin-files), widen the sandbox (sandbox-paths, extra-sandbox-paths,
allowed-impure-host-deps, impure-env), move the build to another machine (builders,
build-hook) or satisfy it by a download (substitute). Left to the user's nix.conf or
NIX_CONFIG, each of these made the tool sign a false claim. So:

- With a local store, or a daemon that trusts this user, each is forced with `--option`
  and read back from the one `nix config show --json` call made with the same options
  (the call `build` makes anyway); a value other than the forced one is refused. Only
  settings this Nix lists are passed, so Nix 2.8 never warns about a newer setting.
- A daemon that does not trust this user honours only `builders = ""` and `substitute`
  from us; for the rest its own nix.conf decides, which we read (without this user's
  configuration) and refuse when it runs code around builds. What it says is recorded
  as `daemon-nix-conf`: read, not proven.
- The derivation itself is built with `substitute = false`: never downloaded. Its
  dependencies may be, in a first step with the user's own substituters.
- Nix before 2.22 cannot switch the build hook off (an empty `build-hook` fails every
  build) and starts it even with `builders = ""`, so it is pointed at a small program of
  ours that declines every build (`decline_hook`): the build then runs here.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provenance.doors.nix import Nix, NixConfig, StoreInfo
from provenance.errors import RefusedError, UsageError
from provenance.policy.environment import (
    DAEMON_CONF,
    DECLINE_HOOK_NAME,
    DEPENDENCY_CHECKS,
    ENFORCEMENTS,
    LOCAL_STORE,
    OUTPUT_CHECKS,
    REQUIRED,
    SAFE,
    TRUSTED_DAEMON,
    WHY,
    EnvironmentPolicy,
    empty,
    recorded_problem,
)

__all__ = [  # the rules and what gate and verify require live in environment.py
    "DAEMON_CONF",
    "DECLINE_HOOK_NAME",
    "DEPENDENCY_CHECKS",
    "ENFORCEMENTS",
    "LOCAL_STORE",
    "OUTPUT_CHECKS",
    "REQUIRED",
    "TRUSTED_DAEMON",
    "BuildEnvironment",
    "EnvironmentPolicy",
    "built_here",
    "decline_hook",
    "establish",
    "forced_options",
    "installable",
    "nondeterministic_outputs",
    "recorded_problem",
    "saw_build",
    "switched_off",
]


_DECLINE_HOOK = b"""#!/bin/sh
# Written by provenance (provenance/nixenv.py): Nix's build hook, switched off. Nix before
# 2.22 starts a build hook for every build and fails when the setting is empty, so this
# one declines every build: Nix then builds here, in its sandbox, never elsewhere.
echo '# decline-permanently' >&2
exec cat >/dev/null
"""

# What we force: (setting, --option value, the experimental feature it needs, if any).
# `build-hook` is filled in by forced_options() with the path of our declining hook.
_FORCED: tuple[tuple[str, str, str | None], ...] = (
    ("sandbox", "true", None),
    ("sandbox-fallback", "false", None),
    ("sandbox-paths", "", None),  # also clears extra-sandbox-paths (read back to prove it)
    ("builders", "", None),
    ("build-hook", "", None),
    ("external-builders", "[]", None),  # 2.32+: programs that run builds instead of Nix
    ("pre-build-hook", "", None),
    ("post-build-hook", "", None),
    ("diff-hook", "", None),
    ("run-diff-hook", "false", None),
    ("allowed-impure-host-deps", "", None),
    ("impure-env", "", "configurable-impure-env"),  # 2.19+
    ("plugin-files", "", None),  # code loaded into nix itself (before the subcommand: ok)
    ("substitute", "false", None),  # the derivation itself; dependencies: dependency_options
)
_OWN_FIELDS = ("sandbox", "sandbox-fallback", "sandbox-paths")
# What an untrusted user's daemon takes from us (Nix's daemon.cc: `builders` only when
# empty, `substitute` with the client's options); everything else is its nix.conf.
_FORWARDED = {"builders": "", "substitute": False}


def decline_hook() -> str:
    """The path of our declining build hook, (re)written when missing or changed.

    In a directory of this user's own: the cache directory, else a private one in the
    temp dir (never one another user made).
    """
    base = os.environ.get("XDG_CACHE_HOME") or (
        str(Path.home() / ".cache") if os.environ.get("HOME") else ""
    )
    candidates = [Path(base) / "provenance"] if base else []
    candidates.append(Path(tempfile.gettempdir()) / f"provenance-{os.getuid()}")
    for d in candidates:
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = d.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                continue  # someone else's, or writable by others: not a place to run code from
            hook = d / DECLINE_HOOK_NAME
            try:
                current = hook.read_bytes()
            except OSError:
                current = b""
            if current != _DECLINE_HOOK or hook.stat().st_mode & 0o777 != 0o755:
                tmp = d / f".{DECLINE_HOOK_NAME}.{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
                with os.fdopen(fd, "wb") as f:
                    f.write(_DECLINE_HOOK)
                tmp.chmod(0o755)
                tmp.replace(hook)
            return str(hook)
        except OSError:
            continue
    msg = "cannot write provenance's build hook into a private directory"
    raise UsageError(msg, "set XDG_CACHE_HOME to a directory you own")


def forced_options() -> dict[str, str]:
    """Everything we force, for the one config read that tells us which of them Nix knows."""
    return {name: decline_hook() if name == "build-hook" else value for name, value, _ in _FORCED}


@dataclass(frozen=True)
class BuildEnvironment:
    """The settings our builds of a derivation run with, as read back (or the daemon's)."""

    options: Mapping[str, str]  # --option pairs for the derivation's own build
    config: NixConfig  # what the builds see: ours read back, or the daemon's nix.conf
    enforcement: str  # LOCAL_STORE | TRUSTED_DAEMON | DAEMON_CONF
    settings: Mapping[str, Any] = field(default_factory=dict)  # recorded in the statement
    substituters: tuple[str, ...] = ()  # where dependencies may come from
    # Only for the dependencies: the caches `verify --substituters` adds (cache/substituters.py)
    dependency_extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def dependency_options(self) -> dict[str, str]:
        """For the derivation's dependencies: the same, except the user's own substitution
        (and the caches verify was given; their signatures stay required)."""
        own = {k: v for k, v in self.options.items() if k != "substitute"}
        return own | dict(self.dependency_extra)

    def record(self, nix_version: str) -> dict[str, Any]:
        """internalParameters.nix of the statement (docs/attestation-format.md)."""
        return {
            "version": nix_version,
            **self.config.as_dict(),
            "sandboxEnforcement": self.enforcement,
            "settings": dict(sorted(self.settings.items())),
        }


def establish(nix: Nix, config: NixConfig, store: StoreInfo) -> BuildEnvironment:
    """The environment builds through `nix` get; RefusedError when it cannot be trusted.

    `config` is `nix.config(forced_options())`: the effective settings under our options.
    """
    enabled = config.values.get("experimental-features")
    features = {f for f in enabled if isinstance(f, str)} if isinstance(enabled, list) else set()
    needs = {name: feature for name, _, feature in _FORCED}
    # Only what this Nix lists (and enables): an unknown option would only warn, in every log.
    options = {
        name: value
        for name, value in forced_options().items()
        if name in config.values and needs[name] in (None, *features)
    }
    subs = config.values.get("substituters")
    substituters = tuple(str(s) for s in subs) if isinstance(subs, list) else ()
    hint = "set `sandbox = true` and `sandbox-fallback = false` in nix.conf"
    if not config.hermetic:
        msg = (
            f"nix reports sandbox={config.sandbox}, sandbox-fallback={config.sandbox_fallback}: "
            "builds would not be hermetic"
        )
        raise RefusedError(msg, hint)
    if store.local or store.trusted:
        # Our options are in force (in this process, or forwarded to a daemon that trusts
        # us): prove each one took. A Nix that ignores one is not a Nix we can attest with.
        for name, forced in options.items():
            if name in SAFE and not SAFE[name](config.values[name]):
                msg = f"nix did not take --option {name} {forced!r}: it reports {config.values[name]!r}"
                raise RefusedError(msg, "check nix.conf and NIX_CONFIG for this setting")
        if config.sandbox_paths:
            msg = f"nix did not take --option sandbox-paths '': it reports {list(config.sandbox_paths)}"
            raise RefusedError(msg, "check nix.conf and NIX_CONFIG for sandbox-paths")
        settings = {n: config.values[n] for n in options if n not in _OWN_FIELDS}
        kind = LOCAL_STORE if store.local else TRUSTED_DAEMON
        return BuildEnvironment(options, config, kind, settings, substituters)
    daemon = _daemon_config(nix, store, hint)
    settings = {n: daemon.values[n] for n in SAFE if n in daemon.values} | _FORWARDED
    for name, value in settings.items():
        if not SAFE[name](value):
            msg = (
                f"the nix daemon ({store.url}) is configured with {name} = {value!r} and "
                f"ignores this user's options: {WHY[name]}"
            )
            raise RefusedError(
                msg, f"remove {name} from the daemon's nix.conf, or build as a trusted user"
            )
    # sandbox-paths are recorded, not refused: a policy may allow them (EnvironmentPolicy).
    return BuildEnvironment(options, daemon, DAEMON_CONF, settings, substituters)


def switched_off(user: NixConfig) -> list[str]:
    """Warnings for hooks the user configured that our builds run without.

    `user` is nix's config without our options. A team's post-build hook that uploads
    to a cache must not stop silently (docs/verify.md says what to do instead).
    """
    hooks = ("pre-build-hook", "post-build-hook", "external-builders")
    found = [(n, user.values[n]) for n in hooks if n in user.values and not empty(user.values[n])]
    if user.values.get("run-diff-hook") is True and not empty(user.values.get("diff-hook")):
        found.append(("diff-hook", user.values["diff-hook"]))
    upload = "; to upload to a cache, do it after signing (docs/verify.md)"
    return [
        f"{name} = {value!r} is switched off for the builds provenance attests: "
        f"{WHY[name]}{upload if name == 'post-build-hook' else ''}"
        for name, value in found
    ]


def _daemon_config(nix: Nix, store: StoreInfo, hint: str) -> NixConfig:
    """What an untrusted user's daemon builds with: the system nix.conf it reads.

    Read without what only this user's nix sees: NIX_CONFIG, the user's own config
    files, another config dir. (The daemon's own environment stays unknowable from here,
    hence "not proven".)
    """
    user_only = ("NIX_CONFIG", "NIX_CONF_DIR", "NIX_USER_CONF_FILES")
    env = {k: v for k, v in os.environ.items() if k not in user_only}
    env["NIX_USER_CONF_FILES"] = ""
    daemon = replace(nix, env=env).config()
    if not daemon.hermetic:
        msg = (
            f"the nix daemon ({store.url}) is configured with sandbox={daemon.sandbox}, "
            f"sandbox-fallback={daemon.sandbox_fallback}, and ignores this user's options"
        )
        raise RefusedError(msg, f"{hint} for the daemon, or build as a trusted user")
    return daemon


# -- what Nix says it did ---------------------------------------------------------------

# Nix's own line when it starts building a derivation here (the logger adds "..."; accept
# "..." quotes as 2.34 prints some paths). Another machine's build reads `building '<drv>'
# on '<host>'...`, which never matches; a builder's own log lines come prefixed with
# `<name>> ` and never match either.
_LOCAL_BUILD = re.compile(
    r"""^(building|checking outputs of) (['"])(/[^'"]+\.drv)\2(?: \(round \d+/\d+\))?(?:\.\.\.)?$"""
)
_NONDETERMINISTIC = re.compile(r"""^error: .*may not be deterministic: output (['"])(/[^'"]+)\1""")


def built_here(line: str) -> tuple[str, str] | None:
    """("building" | "checking outputs of", drv) when `line` says Nix builds drv here."""
    m = _LOCAL_BUILD.match(line.strip())
    return (m.group(1), m.group(3)) if m else None


def saw_build(stderr: str, drv: str, *, rebuild: bool = False) -> bool:
    """Did Nix report building `drv` in this machine's sandbox (rebuild: checking it)?"""
    want = "checking outputs of" if rebuild else "building"
    return any(built_here(ln) == (want, drv) for ln in stderr.splitlines())


def nondeterministic_outputs(stderr: str) -> list[str] | None:
    """Outputs nix's rebuild check says differ, or None if that is not why it failed.

    Only nix's own `error:` lines count, never the build log a test printed.
    """
    found = [m.group(2) for ln in stderr.splitlines() if (m := _NONDETERMINISTIC.match(ln.strip()))]
    return sorted(set(found)) if found else None


def installable(drv: str, nix_version: str) -> str:
    """How to name a derivation's outputs to `nix build`.

    From Nix 2.13 a bare `X.drv` names the .drv file itself: `nix build` exits 0 having
    built nothing (and `--rebuild` having compared nothing). `X.drv^*` names every
    output; 2.8 rejects `^` and builds the outputs of a bare `X.drv`.
    """
    parts = nix_version.split(".")
    try:
        newer = (int(parts[0]), int(parts[1].split("pre")[0])) >= (2, 13)
    except (ValueError, IndexError):
        newer = True
    return f"{drv}^*" if newer else drv
