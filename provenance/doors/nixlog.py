"""What nix's human-readable stderr says about where paths came from (its errors: nixerrors.py).

nixparse.py reads nix's JSON; this module reads the lines nix prints for people, where
some facts exist only there: which paths a build substituted and from which cache,
which substitutes it refused (unsigned, corrupt), which paths `nix copy` sent. Only
nix's own lines count, never a builder's log (those come prefixed with `<name>> `).
Nix quotes paths with '...' up to 2.33 and with "..." from 2.34; both are read.
Like nixparse.py it runs no process; the runner (nix.py) decides what to raise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_Q = r"""(['"])"""  # an opening quote; the matching close is a backreference
# `copying path '<p>' from '<url>'...`: a substitution started (it may still fail).
_FROM = re.compile(rf"^copying path {_Q}(/[^'\"]+)\1 from {_Q}([^'\"]+)\3(?:\.\.\.)?$")
# `copying path '<p>' to '<url>'...`: `nix copy` sends a path (the size line differs).
_TO = re.compile(rf"^copying path {_Q}(/[^'\"]+)\1 to {_Q}([^'\"]+)\3(?:\.\.\.)?$")
# 2.8: "the substitute for 'P' from 'U' is not signed by any of the keys in ...";
# later: "ignoring substitute for 'P' from 'U', as it's not signed by any of the keys ...".
_UNSIGNED = re.compile(rf"substitute for {_Q}(/[^'\"]+)\1 from {_Q}([^'\"]+)\3.*not signed")
_MISMATCH = re.compile(rf"^error: hash mismatch importing path {_Q}(/[^'\"]+)\1")
_BUILDING = re.compile(rf"^building {_Q}(/[^'\"]+\.drv)\1(?:\.\.\.)?$")


@dataclass(frozen=True)
class SubstitutionLog:
    """What one nix call said about substitutes, in nix's own words."""

    started: dict[str, str]  # path -> substituter it began copying from
    unsigned: dict[str, str]  # path -> substituter whose signature no trusted key made
    corrupt: dict[str, str]  # path -> substituter whose NAR did not match its narinfo
    built: tuple[str, ...]  # derivations nix built here

    @property
    def substituted(self) -> dict[str, str]:
        """Copies that began and were not rejected (the caller still checks validity)."""
        return {p: u for p, u in self.started.items() if p not in self.corrupt}


def substitution(stderr: str) -> SubstitutionLog:
    started: dict[str, str] = {}
    unsigned: dict[str, str] = {}
    corrupt: dict[str, str] = {}
    built: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if m := _FROM.match(line):
            started[m.group(2)] = m.group(4)
        elif m := _UNSIGNED.search(line):
            unsigned[m.group(2)] = m.group(4)
        elif m := _MISMATCH.match(line):
            corrupt[m.group(2)] = started.get(m.group(2), "?")
        elif m := _BUILDING.match(line):
            built.append(m.group(2))
    return SubstitutionLog(started, unsigned, corrupt, tuple(dict.fromkeys(built)))


def copied_to(stderr: str) -> list[str]:
    """Paths `nix copy -v --to` sent (paths the destination had are not named)."""
    return list(
        dict.fromkeys(m.group(2) for ln in stderr.splitlines() if (m := _TO.match(ln.strip())))
    )


def on_copy(callback: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """A stderr-line handler that calls `callback` with each path `nix copy` sends."""
    if callback is None:
        return None

    def line(text: str) -> None:
        if m := _TO.match(text.strip()):
            callback(m.group(2))

    return line


# -- errors -----------------------------------------------------------------------------
