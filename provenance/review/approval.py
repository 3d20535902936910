"""The approval statement: a reviewer accepts exactly these deltas of one commit.

An in-toto Statement v1 with predicateType `APPROVAL_V1`
(docs/attestation-format.md#approval-v1), signed as DSSE like every other statement and
unioned into the commit's note:

- subject: `[{"name": "commit", "digest": {"gitCommit": REV}}]`;
- predicate: `base` (`ref`, `gitCommit` of its tip, `mergeBase`), `flakeDir`, `reason`,
  `approvedOn`, `deltas` (deltas.Delta.as_json) and `protectedPaths`
  (protected.PathChange.as_json): everything the reviewer saw, listed;
  `approver` names the tool and its version.

The gate counts an approval only for the deltas and path changes it lists, matched by
value (compare.py): an approval of other deltas than the commit's approves nothing.
Built with the pydantic models (`intoto.Statement`), whose bytes are what is signed;
read with plain json after the signature checked (`parse`), like claims.py.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenance import __version__
from provenance.errors import AttestationError
from provenance.formats.uris import APPROVAL_V1
from provenance.review.deltas import Delta
from provenance.review.protected import PathChange

if TYPE_CHECKING:
    from provenance.formats.intoto import Statement

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MAX_REASON = 2000


@dataclass(frozen=True)
class Approval:
    commit: str  # the subject: the commit whose deltas are approved
    note_commit: str  # the commit whose note carries it
    base_ref: str
    base_commit: str
    merge_base: str
    flake_dir: str
    reason: str
    approved_on: str
    deltas: tuple[Delta, ...]
    paths: tuple[PathChange, ...]
    keyids: frozenset[str]  # the reviewer keys whose signatures verified

    def covers(self) -> set[tuple[Any, ...]]:
        """The identities (Delta.key, PathChange.key) of everything it approves."""
        return {d.key() for d in self.deltas} | {p.key() for p in self.paths}


def statement(
    *,
    commit: str,
    base_ref: str,
    base_commit: str,
    merge_base: str,
    flake_dir: str,
    reason: str,
    deltas: list[Delta],
    paths: list[PathChange],
    when: dt.datetime | None = None,
) -> Statement:
    from provenance.formats.intoto import ResourceDescriptor, Statement  # noqa: PLC0415

    approved_on = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    predicate = {
        "base": {"ref": base_ref, "gitCommit": base_commit, "mergeBase": merge_base},
        "flakeDir": flake_dir,
        "reason": reason,
        "approvedOn": approved_on,
        "deltas": [d.as_json() for d in sorted(deltas)],
        "protectedPaths": [p.as_json() for p in sorted(paths)],
        "approver": {"tool": "provenance", "version": __version__},
    }
    return Statement(
        subject=[ResourceDescriptor(name="commit", digest={"gitCommit": commit})],
        predicate_type=APPROVAL_V1,
        predicate=predicate,
    )


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        msg = f"approval statement: {where}{key} is not a string"
        raise AttestationError(msg)
    return value


def parse(stmt: dict[str, Any], note_commit: str, keyids: frozenset[str]) -> Approval:
    """A verified approval statement; AttestationError when it is not one we can read."""
    if stmt.get("predicateType") != APPROVAL_V1:
        msg = f"predicateType is {stmt.get('predicateType')!r}, expected {APPROVAL_V1}"
        raise AttestationError(msg)
    subjects = stmt.get("subject")
    digest = (
        subjects[0].get("digest")
        if isinstance(subjects, list) and len(subjects) == 1 and isinstance(subjects[0], dict)
        else None
    )
    commit = digest.get("gitCommit") if isinstance(digest, dict) else None
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        msg = "approval statement: the subject must be one commit (digest.gitCommit)"
        raise AttestationError(msg)
    pred = stmt.get("predicate")
    base = pred.get("base") if isinstance(pred, dict) else None
    if not isinstance(pred, dict) or not isinstance(base, dict):
        msg = "approval statement: predicate.base is missing"
        raise AttestationError(msg)
    deltas, paths = pred.get("deltas"), pred.get("protectedPaths")
    if not isinstance(deltas, list) or not isinstance(paths, list):
        msg = "approval statement: deltas and protectedPaths must be lists"
        raise AttestationError(msg)
    return Approval(
        commit=commit,
        note_commit=note_commit,
        base_ref=_str(base, "ref", "base."),
        base_commit=_str(base, "gitCommit", "base."),
        merge_base=_str(base, "mergeBase", "base."),
        flake_dir=_str(pred, "flakeDir", ""),
        reason=_str(pred, "reason", "")[:MAX_REASON],
        approved_on=_str(pred, "approvedOn", ""),
        deltas=tuple(Delta.from_json(d) for d in deltas),
        paths=tuple(PathChange.from_json(p) for p in paths),
        keyids=keyids,
    )
