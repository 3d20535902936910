"""What defines a flake's checks, and whether an earlier commit defined them the same way.

An attestation is made on one commit. `gate`, `verify` and `build`'s cache reuse it for a
later commit only when that commit evaluates the check to the same drvPath *and* nothing
that defines the checks differs between the two commits. The drvPath pins what is built;
the definition pins what the check is: a change that rewires a check onto an old copy of
its tests keeps the drvPath and changes flake.nix, and must be proven again.

What defines the checks (docs/architecture.md, "What defines the checks"):
- every `*.nix` file of the repository: a flake's source is its whole repository, so any
  of them may be imported by the flake;
- `flake.lock` and `provenance.toml` of the flake directory (`flake.nix` is a .nix file;
  provenance.toml lists the paths below, so changing it changes the definition);
- the paths listed in `[definition] paths` of that provenance.toml, relative to the flake
  directory: a file, a directory (everything under it), or a glob (`*` crosses `/`).

A README-only commit changes none of these, so it keeps reusing its parent's proofs.
One `git diff-tree` per compared commit (and one `git show` of provenance.toml when a
changed path is not already part of the definition); answers are memoised.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import tomllib
from dataclasses import dataclass, field

from provenance.doors.git import Git
from provenance.errors import ProvenanceError
from provenance.policy.trust import POLICY_FILE

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_GLOB = re.compile(r"[*?\[]")
SHOWN = 3  # paths named in a reason


@dataclass
class Definitions:
    """Compares what defines the checks at `commit` with other commits (memoised)."""

    git: Git
    commit: str
    subdir: str = ""  # the flake directory, relative to the repository
    _changes: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _extra: tuple[str, ...] | None = field(default=None, repr=False)

    def _in_flake(self, name: str) -> str:
        return f"{self.subdir}/{name}" if self.subdir else name

    def changes_since(self, other: str) -> tuple[str, ...]:
        """What defines the checks and differs between `other` and `commit`; () if nothing.

        Each entry is a repository path, or one sentence when the answer is not known
        (then nothing may be reused: in doubt the definitions differ).
        """
        if other == self.commit:
            return ()
        if other not in self._changes:
            self._changes[other] = self._compare(other)
        return self._changes[other]

    def same_as(self, other: str) -> bool:
        return not self.changes_since(other)

    def _compare(self, other: str) -> tuple[str, ...]:
        if not _COMMIT.match(other):
            return (f"{other[:40]!r} is not a commit id",)
        try:
            changed = self.git.changed_paths(other, self.commit)
        except ProvenanceError as e:
            return (f"cannot compare with {other[:12]}: {e.message}",)
        fixed = {self._in_flake("flake.lock"), self._in_flake(POLICY_FILE)}
        found = [p for p in changed if p.endswith(".nix") or p in fixed]
        rest = [p for p in changed if p not in found]
        if rest:
            try:
                extra = self._extra_paths()
            except ValueError as e:
                return (str(e),)
            found += [p for p in rest if any(_matches(p, entry) for entry in extra)]
        return tuple(sorted(found))

    def _extra_paths(self) -> tuple[str, ...]:
        """`[definition] paths` of provenance.toml at `commit`, as repository paths."""
        if self._extra is None:
            self._extra = _parse_extra(
                self.git.show_file(self.commit, self._in_flake(POLICY_FILE)), self.subdir
            )
        return self._extra


def _parse_extra(data: bytes | None, subdir: str) -> tuple[str, ...]:
    """The listed paths joined to the flake directory; ValueError says what is wrong."""
    if data is None:
        return ()
    where = f"{subdir}/{POLICY_FILE}" if subdir else POLICY_FILE
    try:
        table = tomllib.loads(data.decode()).get("definition", {})
    except ValueError as e:  # not UTF-8, not TOML, a number over 4300 digits
        msg = f"{where} is not valid TOML ({e}), so what defines the checks is unknown"
        raise ValueError(msg) from None
    except RecursionError:
        msg = f"{where} is nested too deeply, so what defines the checks is unknown"
        raise ValueError(msg) from None
    paths = table.get("paths", []) if isinstance(table, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        msg = f"{where}: definition.paths must be a list of paths, so what defines the checks is unknown"
        raise ValueError(msg)
    out: list[str] = []
    for p in paths:
        joined = posixpath.normpath(posixpath.join(subdir, p)) if subdir else posixpath.normpath(p)
        if p.startswith("/") or joined == ".." or joined.startswith("../"):
            msg = f"{where}: definition path {p!r} is outside the repository"
            raise ValueError(msg)
        out.append("" if joined == "." else joined)
    return tuple(out)


def matches(path: str, entry: str) -> bool:
    """Is repository `path` named by `entry`: a file, a directory, or a glob (`*` crosses `/`)."""
    return _matches(path, entry)


def _matches(path: str, entry: str) -> bool:
    if entry == "":
        return True  # the whole repository (the flake directory is its root)
    if _GLOB.search(entry):
        return fnmatch.fnmatchcase(path, entry)
    return path == entry or path.startswith(entry.rstrip("/") + "/")


def describe(changes: tuple[str, ...]) -> str:
    """`flake.nix, checks.nix (+2 more)`, for a one-line reason."""
    shown = ", ".join(changes[:SHOWN])
    return shown + (f" (+{len(changes) - SHOWN} more)" if len(changes) > SHOWN else "")
