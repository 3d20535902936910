"""Move `refs/notes/provenance` between machines, and read the notes of a commit's history.

Notes are a union, always. Several machines attest the same commits, each adding lines
to its own copy of a note, and a remote may be rewritten by anyone who can push to it.
So sync never takes one side's note for a commit: fetching brings the remote's notes
into `refs/notes/remotes/<remote>/provenance` and `union` combines, per annotated
commit, our lines (kept byte for byte, in order) with the remote's lines we lack. A
remote that dropped lines (a rewritten or "cleaned" notes ref) therefore never removes
one here. NOTE: `git notes merge` is not used: it fast-forwards when our ref is an
ancestor of theirs and three-way merges otherwise, and both take a deletion made on
one side. The result is a commit whose parents are ours and theirs, so pushing it is
a fast-forward; pushing is fetch-union-push, retried when another machine pushed in
between (non-fast-forward, never forced), so a push never removes the remote's lines.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from provenance.doors.git import NOTES_REF, Git
from provenance.errors import GitError

PUSH_ATTEMPTS = 5
# How far back `gate` and `build` look for an attestation of the same drvPath (commits,
# REV included). Bounded so a gate stays cheap on long histories; see docs/ci.md.
DEFAULT_SEARCH_DEPTH = 50


_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def remote_ref(remote: str) -> str:
    """Where a remote's notes are fetched to: per remote name, or per URL or path.

    A URL or a path (`notes fetch ../other.git`, `file:///srv/x.git`) cannot be part of a
    ref name, so it is named by a digest of itself: still one tracking ref per remote.
    """
    if _REMOTE_NAME.match(remote) and not remote.endswith(".lock"):
        return f"refs/notes/remotes/{remote}/provenance"
    digest = hashlib.sha256(remote.encode()).hexdigest()[:16]
    return f"refs/notes/remotes/url-{digest}/provenance"


@dataclass(frozen=True)
class SyncResult:
    remote: str
    found: bool  # the remote had notes (fetch) / our notes are now on the remote (push)
    attempts: int = 1
    gained: int = 0  # fetch: annotated commits whose note gained lines from the remote


def default_remote(git: Git) -> str | None:
    """`origin` if present, else the only remote; None for a repo without remotes."""
    remotes = git.remotes()
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def fetch(git: Git, remote: str) -> SyncResult:
    """Fetch the remote's notes and union them into ours; no local line is ever lost."""
    found = git.fetch_notes(remote, remote_ref(remote))
    gained = union(git, remote_ref(remote)) if found else 0
    return SyncResult(remote, found, gained=gained)


def _lines(body: bytes) -> list[bytes]:
    # As everywhere notes are read: split on b"\n" only, blank lines are no lines.
    return [ln for ln in body.split(b"\n") if ln.strip()]


def union_lines(ours: bytes, theirs: bytes) -> list[bytes]:
    """Our lines as they are, then each of their lines we do not have, in their order."""
    mine = _lines(ours)
    have = set(mine)
    added: list[bytes] = []
    for ln in _lines(theirs):
        if ln not in have:
            have.add(ln)
            added.append(ln)
    return mine + added


def union(git: Git, other: str, ref: str = NOTES_REF) -> int:
    """Make `ref` hold every line of `ref` and of `other`, per annotated commit.

    Returns how many annotated commits' notes gained lines here. Under the notes lock,
    and the ref moves by compare-and-swap, so a concurrent local writer is never
    overwritten. Reads only the notes that differ on the two sides (one batch).
    """
    with git.notes_lock():
        theirs_at = git.resolve_ref(other)
        ours_at = git.resolve_ref(ref)
        if theirs_at is None or theirs_at == ours_at:
            return 0
        theirs = git.notes_index(other)
        if ours_at is None:
            _move(git, ref, theirs_at, None)
            return len(theirs)
        ours = git.notes_index(ref)
        both = [c for c, b in theirs.items() if c in ours and ours[c] != b]
        bodies = git.read_blobs(sorted({ours[c] for c in both} | {theirs[c] for c in both}))
        merged = {**theirs, **ours}  # a note only they have is theirs as it is
        gained = sum(1 for c in theirs if c not in ours)
        new_bodies: dict[str, bytes] = {}
        for commit in both:
            mine = _lines(bodies[ours[commit]])
            lines = union_lines(bodies[ours[commit]], bodies[theirs[commit]])
            if len(lines) == len(mine):
                continue  # we have all their lines: our note stays as it is
            gained += 1
            if lines == _lines(bodies[theirs[commit]]):
                merged[commit] = theirs[commit]  # theirs already is the union
            else:
                new_bodies[commit] = b"\n".join(lines) + b"\n"
        written = git.write_blobs(list(new_bodies.values()))
        merged.update(zip(new_bodies, written, strict=True))
        if merged == theirs and git.is_ancestor(ours_at, theirs_at):
            _move(git, ref, theirs_at, ours_at)  # a fast-forward that loses nothing
        elif merged != ours or not git.is_ancestor(theirs_at, ours_at):
            # A merge commit even when our lines already include theirs: with their commit
            # as a parent, our next push is a fast-forward.
            tip = git.commit_notes_tree(merged, [ours_at, theirs_at], f"Notes union with {other}")
            _move(git, ref, tip, ours_at)
        return gained


def _move(git: Git, ref: str, new: str, old: str | None) -> None:
    if not git.update_ref(ref, new, old):
        msg = f"{ref} moved while its notes were being unioned"
        raise GitError(msg, "run the command again")


def push(git: Git, remote: str, attempts: int = PUSH_ATTEMPTS) -> SyncResult:
    """Union the remote's notes into ours, then push; retry if someone pushed meanwhile.

    Never forced: the push only fast-forwards the remote to a union of its own lines.
    """
    if not git.ref_exists(NOTES_REF):
        fetch(git, remote)
        if not git.ref_exists(NOTES_REF):
            return SyncResult(remote, found=False, attempts=0)  # nothing to push anywhere
    for attempt in range(1, attempts + 1):
        fetch(git, remote)
        if git.push_notes(remote):
            return SyncResult(remote, found=True, attempts=attempt)
    msg = f"pushing notes to {remote} was rejected {attempts} times (others keep pushing)"
    raise GitError(msg, "run `provenance notes push` again")


def history_notes(git: Git, rev: str, depth: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    """The bounded history of `rev` (newest first) and the notes on it, in that order.

    Three git calls whatever the depth: rev-list, notes list, one cat-file batch.
    """
    commits = git.rev_list(rev, depth)
    index = git.notes_index()
    wanted = [(c, index[c]) for c in commits if c in index]
    blobs = git.read_blobs([b for _, b in wanted])
    return commits, [(c, blobs[b]) for c, b in wanted if b in blobs]
