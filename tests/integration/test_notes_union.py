"""Notes are a union, always (issue 11, part 3): real git, a real bare remote.

`git notes merge` fast-forwards when the local notes ref is an ancestor of the remote's,
so a remote rewritten by a descendant commit that deletes lines used to delete them
locally too, and a three-way merge takes a deletion made on one side. Fetching now
combines lines per annotated commit; a push only ever fast-forwards the remote to a
union of its own lines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provenance.doors import notes
from provenance.doors.git import NOTES_REF, Git
from tests.conftest import git, run


def _lines(repo: Path, rev: str = "HEAD") -> list[str]:
    cmd = ["git", "-C", str(repo), "notes", "--ref", "provenance", "show", rev]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return [ln for ln in done.stdout.splitlines() if ln.strip()] if done.returncode == 0 else []


def _note(repo: Path, rev: str, *lines: str) -> None:
    """Set the whole note on `rev` (a rewrite: a new notes commit on top of the old)."""
    git(repo, "notes", "--ref", "provenance", "add", "-f", "-m", "\n".join(lines), rev)


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A bare remote with two commits, and three clones: a, b (honest) and c (rewriter)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q")
    for n in ("one", "two"):
        (seed / n).write_text(n)
        git(seed, "add", n)
        git(seed, "commit", "-qm", n)
    bare = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(seed), str(bare)])
    clones = []
    for name in ("a", "b", "c"):
        run(["git", "clone", "-q", str(bare), str(tmp_path / name)])
        clones.append(tmp_path / name)
    return bare, clones[0], clones[1], clones[2]


def test_a_remote_that_dropped_lines_does_not_delete_them_here(
    remote: tuple[Path, Path, Path, Path],
) -> None:
    bare, a, _, c = remote
    _note(a, "HEAD", "L1", "L2-dissent")
    notes.push(Git(a), "origin")
    # c fetches (a fast-forward), rewrites the note without a's dissent, pushes: the
    # remote's ref is now a descendant of a's, with fewer lines.
    notes.fetch(Git(c), "origin")
    _note(c, "HEAD", "L1")
    git(c, "push", "-q", "origin", f"{NOTES_REF}:{NOTES_REF}")
    assert _lines(bare) == ["L1"]

    before = git(a, "rev-parse", NOTES_REF)
    result = notes.fetch(Git(a), "origin")
    assert result.found
    assert _lines(a) == ["L1", "L2-dissent"]  # nothing lost
    assert git(a, "rev-parse", NOTES_REF) != before  # ... and the remote's commit is merged
    # Pushing restores the line on the remote, without forcing anything.
    assert notes.push(Git(a), "origin").attempts == 1
    assert _lines(bare) == ["L1", "L2-dissent"]


def test_a_remote_that_added_lines_adds_them_here(remote: tuple[Path, Path, Path, Path]) -> None:
    _, a, b, _ = remote
    _note(a, "HEAD", "L1")
    notes.push(Git(a), "origin")
    notes.fetch(Git(b), "origin")
    git(b, "notes", "--ref", "provenance", "append", "-m", "L3", "HEAD")
    _note(b, "HEAD~1", "on-the-parent")
    notes.push(Git(b), "origin")

    result = notes.fetch(Git(a), "origin")
    assert result.gained == 2  # HEAD's note gained a line, HEAD~1 got one
    assert _lines(a) == ["L1", "L3"]
    assert _lines(a, "HEAD~1") == ["on-the-parent"]
    # Our ref simply fast-forwarded: the remote's already held everything we had.
    assert git(a, "rev-parse", NOTES_REF) == git(a, "rev-parse", notes.remote_ref("origin"))
    # A second fetch changes nothing.
    assert notes.fetch(Git(a), "origin").gained == 0
    assert _lines(a) == ["L1", "L3"]


def test_dropped_and_added_at_once(remote: tuple[Path, Path, Path, Path]) -> None:
    bare, a, _, c = remote
    _note(a, "HEAD", "L1", "L2")
    _note(a, "HEAD~1", "P1")
    notes.push(Git(a), "origin")
    # The rewriter drops L2, adds L9 beside L1, and deletes the parent's note entirely.
    notes.fetch(Git(c), "origin")
    _note(c, "HEAD", "L1", "L9")
    git(c, "notes", "--ref", "provenance", "remove", "HEAD~1")
    git(c, "push", "-q", "origin", f"{NOTES_REF}:{NOTES_REF}")
    # Meanwhile a wrote a line of its own.
    git(a, "notes", "--ref", "provenance", "append", "-m", "L4", "HEAD")

    notes.fetch(Git(a), "origin")
    assert _lines(a) == ["L1", "L2", "L4", "L9"]
    assert _lines(a, "HEAD~1") == ["P1"]
    notes.push(Git(a), "origin")
    assert _lines(bare) == ["L1", "L2", "L4", "L9"]
    assert _lines(bare, git(a, "rev-parse", "HEAD~1")) == ["P1"]


def test_two_pushers_racing_lose_nothing(remote: tuple[Path, Path, Path, Path]) -> None:
    """b is about to push when a pushes first: b's push is rejected, b fetches, unions and
    pushes again; neither machine's lines are lost, and nothing is forced."""
    bare, a, b, _ = remote
    _note(a, "HEAD", "from-a")
    _note(b, "HEAD", "from-b")
    pushed_first = False

    class Racing(Git):
        def push_notes(self, remote: str, ref: str = NOTES_REF) -> bool:
            nonlocal pushed_first
            if not pushed_first:
                pushed_first = True
                assert notes.push(Git(a), "origin").found  # a wins the race
            return super().push_notes(remote, ref)

    result = notes.push(Racing(b), "origin")
    assert pushed_first
    assert result.attempts == 2
    assert sorted(_lines(bare)) == ["from-a", "from-b"]
    # a's next fetch brings b's line; a keeps its own.
    notes.fetch(Git(a), "origin")
    assert sorted(_lines(a)) == ["from-a", "from-b"]


def test_first_fetch_and_exact_bytes(remote: tuple[Path, Path, Path, Path]) -> None:
    """A repo without notes takes the remote's as they are; merged notes keep every line
    byte for byte (a stray \\r, U+2028 inside a line), ours first."""
    _, a, b, _ = remote
    odd = "x\u2028y"
    Git(a).add_note_lines("HEAD", ["A1\r", odd])
    notes.push(Git(a), "origin")
    assert notes.fetch(Git(b), "origin").gained == 1
    assert git(b, "rev-parse", NOTES_REF) == git(a, "rev-parse", NOTES_REF)
    git(b, "notes", "--ref", "provenance", "append", "-m", "B1", "HEAD")
    notes.push(Git(b), "origin")
    git(a, "notes", "--ref", "provenance", "append", "-m", "A2", "HEAD")
    notes.fetch(Git(a), "origin")
    body = Git(a).note("HEAD")
    assert body is not None
    assert body.split(b"\n")[:4] == [b"A1\r", odd.encode(), b"A2", b"B1"]
