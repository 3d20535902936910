"""Writing our lines into a git note never alters anybody else's lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

from provenance.doors.git import NOTES_REF, Git
from tests.conftest import git, run


def _repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repo with one commit; returns it and the commit."""
    repo = tmp_path / "r"
    repo.mkdir()
    run(["git", "init", "-q"], cwd=repo)
    (repo / "f").write_text("x\n")
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "x"], cwd=repo)
    return repo, git(repo, "rev-parse", "HEAD")


def test_other_tools_lines_survive_byte_for_byte(tmp_path: Path) -> None:
    repo, head = _repo(tmp_path)
    # A JSON line with a raw U+2028, a line with a non-UTF-8 byte, a line ending in \r.
    theirs = '{"other":"a\u2028b"}'.encode() + b"\n" + b"bin \xff junk  \n" + b"crlf\r\n"
    blob = (
        subprocess.run(
            ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
            input=theirs,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(repo, "notes", "--ref", NOTES_REF, "add", "-C", blob, head)
    assert Git(repo).add_note_lines(head, ['{"ours":1}']) == 1
    note = subprocess.run(
        ["git", "-C", str(repo), "notes", "--ref", NOTES_REF, "show", head],
        capture_output=True,
        check=True,
    ).stdout
    assert note == theirs + b'{"ours":1}\n'
    # Adding the same line again changes nothing.
    assert Git(repo).add_note_lines(head, ['{"ours":1}']) == 0


def test_linked_worktrees_share_one_notes_lock(tmp_path: Path) -> None:
    repo, head = _repo(tmp_path)
    run(["git", "worktree", "add", "-q", str(tmp_path / "wt")], cwd=repo)
    Git(tmp_path / "wt").add_note_lines(head, ["from-worktree"])
    Git(repo).add_note_lines(head, ["from-main"])
    # notes refs are shared by all worktrees, so the lock lives in the common git dir
    assert (repo / ".git" / "provenance-notes.lock").exists()
    assert not list((repo / ".git" / "worktrees").rglob("provenance-notes.lock"))
    assert git(repo, "notes", "--ref", NOTES_REF, "show", head).splitlines() == [
        "from-worktree",
        "from-main",
    ]
