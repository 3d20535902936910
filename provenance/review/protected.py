"""Protected paths: files whose change against the base needs an approval before a skip.

The files that define the checks (flake.nix, the lock file, the Nix library, the tests)
decide what a passing check means. A change to them gets a new drvPath and is attested
honestly, so the drvPath alone cannot tell "fixed a test" from "made the test pass
vacuously". `[review] protected` (policy.py) lists them; every changed path it names is a
`PathChange`, compared with one `git diff-tree` between the merge base and the revision.

A change is named by its path and the `mode blob` on each side, so approving one edit of
flake.nix does not approve the next, different edit of it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from provenance.doors.git import Git
from provenance.errors import AttestationError
from provenance.policy.definition import matches

_SIDE = re.compile(r"^[0-7]{6} [0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True, order=True)
class PathChange:
    path: str  # repository path
    before: str | None  # "mode blob" at the base, None when added
    after: str | None  # "mode blob" at the revision, None when deleted
    pattern: str = ""  # the protected entry that names it (not part of its identity)

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "deleted" if self.after is None else "modified"

    def key(self) -> tuple[str, str, str]:
        return (self.path, self.before or "", self.after or "")

    def describe(self) -> str:
        return f"{self.path} {self.kind}"

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.kind,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PathChange:
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
            msg = "an approved path change is not an object with a path"
            raise AttestationError(msg)
        sides = [obj.get("before"), obj.get("after")]
        if any(s is not None and (not isinstance(s, str) or not _SIDE.match(s)) for s in sides):
            msg = f"an approved change of {obj['path']} does not name its 'mode blob' sides"
            raise AttestationError(msg)
        if sides == [None, None]:
            msg = f"an approved change of {obj['path']} has neither side"
            raise AttestationError(msg)
        return cls(obj["path"], sides[0], sides[1])


def protected_changes(
    git: Git, base: str, rev: str, subdir: str, patterns: tuple[str, ...]
) -> list[PathChange]:
    """Changed paths between `base` and `rev` that a protected entry names, sorted."""
    entries = [_in_flake(subdir, p) for p in patterns]
    found: list[PathChange] = []
    for change in git.changed_entries(base, rev):
        hit = next(
            (p for p, e in zip(patterns, entries, strict=True) if matches(change.path, e)), None
        )
        if hit is not None:
            found.append(PathChange(change.path, change.before, change.after, hit))
    return sorted(found)


def _in_flake(subdir: str, pattern: str) -> str:
    if not subdir:
        return pattern
    joined = posixpath.join(subdir, pattern)
    return joined if pattern.endswith("/") or "*" in pattern else posixpath.normpath(joined)
