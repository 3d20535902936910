"""Move `refs/notes/provenance` between machines, and read the notes of a commit's history.

Several machines may attest the same commit at once, each adding lines to its own copy
of the note. Sync never picks a winner: fetching brings the remote's notes into
`refs/notes/remotes/<remote>/provenance` and merges them with git's `cat_sort_uniq`
strategy, which unions the lines of two notes on the same commit (sorted, duplicates
dropped; JSONL lines carry no order). Pushing is fetch-merge-push, retried when another
machine pushed in between (non-fast-forward), so no machine's lines are ever lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.errors import GitError
from provenance.git import NOTES_REF, Git

PUSH_ATTEMPTS = 5
# How far back `gate` and `build` look for an attestation of the same drvPath (commits,
# REV included). Bounded so a gate stays cheap on long histories; see docs/ci.md.
DEFAULT_SEARCH_DEPTH = 50


def remote_ref(remote: str) -> str:
    return f"refs/notes/remotes/{remote}/provenance"


@dataclass(frozen=True)
class SyncResult:
    remote: str
    found: bool  # the remote had notes (fetch) / our notes are now on the remote (push)
    attempts: int = 1


def default_remote(git: Git) -> str | None:
    """`origin` if present, else the only remote; None for a repo without remotes."""
    remotes = git.remotes()
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def fetch(git: Git, remote: str) -> SyncResult:
    """Fetch the remote's notes and union them into ours."""
    found = git.fetch_notes(remote, remote_ref(remote))
    if found:
        git.merge_notes(remote_ref(remote))
    return SyncResult(remote, found)


def push(git: Git, remote: str, attempts: int = PUSH_ATTEMPTS) -> SyncResult:
    """Union the remote's notes into ours, then push; retry if someone pushed meanwhile."""
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
