"""The service's own copy of each requester's repository, and one work tree per commit.

    STATE/mirrors/<key>/repo.git            bare, the service's: every commit it was asked
                                            about (refs/provenance/commits/*) and its notes,
                                            which are its cache (what it signed)
    STATE/mirrors/<key>/work/<commit>/      a detached work tree of that commit: what the
                                            pipeline builds, clean by construction
    STATE/mirrors/<key>/work/<commit>.ready written once that work tree is complete
    STATE/mirrors/<key>/source              the repository's path, for humans

`<key>` is the SHA-256 of the repository's real path. A commit is fetched once (a commit id
names its whole tree, so the requester cannot swap content under it later), and its work
tree is made once and reused, so a cache hit costs no git transfer at all. A work tree is
used under a shared lock and made or deleted under an exclusive one; one left half-made
by a killed service has no `.ready` file and is made again. The oldest work trees beyond
`keep` are deleted when nobody uses them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from provenance.doors.gitmirror import MirrorGit
from provenance.errors import RefusedError, UsageError


def _lock(path: Path, kind: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, kind)
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def check_requester_repository(repository: str, uid: int, service_user: str) -> str:
    """The real path of `repository`, which the requester must own and we must read.

    Owned by the requester (root may name any): otherwise anyone could make the service
    fetch, build and report on a repository they cannot read themselves.
    """
    real = os.path.realpath(repository)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        msg = f"{repository} does not exist"
        raise UsageError(msg) from None
    except PermissionError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        msg = f"{repository} is not a directory"
        raise UsageError(msg)
    readable = st is not None and all(
        os.access(p, os.R_OK | os.X_OK) for p in (real, os.path.join(real, ".git"))
    )
    if not readable:
        msg = f"the service (user {service_user}) cannot read the repository {repository}"
        raise UsageError(
            msg, f"let {service_user} read it and enter the directories above it, then try again"
        )
    assert st is not None
    if uid not in (0, st.st_uid):  # root may name any repository
        msg = (
            f"{repository} belongs to uid {st.st_uid}, not to you (uid {uid}): the service "
            "builds only repositories of the user who asks"
        )
        raise RefusedError(msg, "ask for a repository of your own")
    return real


class Mirror:
    def __init__(self, state_dir: Path, keep: int = 32) -> None:
        self.root = state_dir / "mirrors"
        self.keep = keep

    def _dir(self, repository: str) -> Path:
        return self.root / hashlib.sha256(repository.encode()).hexdigest()[:32]

    def _fetch(self, base: Path, repository: str, commit: str) -> MirrorGit:
        """The bare mirror, with `commit` in it (fetched unless it already is)."""
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        git = MirrorGit(base / "repo.git")
        fd = _lock(base / "fetch.lock", fcntl.LOCK_EX)
        try:
            if not (base / "repo.git" / "HEAD").is_file():
                shutil.rmtree(base / "repo.git", ignore_errors=True)
                (base / "repo.git").mkdir()
                git.init_bare()
                (base / "source").write_text(repository + "\n")
            if not git.has_commit(commit):
                git.fetch_commit(repository, commit)
        finally:
            _unlock(fd)
        return git

    @contextlib.contextmanager
    def checkout(self, repository: str, commit: str) -> Iterator[Path]:
        """A clean work tree of `commit` of `repository`, held while the block runs."""
        base = self._dir(repository)
        git = self._fetch(base, repository, commit)
        work = base / "work"
        work.mkdir(exist_ok=True, mode=0o700)
        tree, ready = work / commit, work / f"{commit}.ready"
        fd = _lock(work / f"{commit}.lock", fcntl.LOCK_EX)
        try:
            if not ready.exists():
                # Left half-made by a service that was killed, or never made.
                if tree.exists() or tree.is_symlink():
                    git.remove_worktree(tree)
                    shutil.rmtree(tree, ignore_errors=True)
                git.add_worktree(tree, commit)
                ready.touch()
            os.utime(ready)  # most recently used: pruned last
            fcntl.flock(fd, fcntl.LOCK_SH)  # others may use it too; nobody may delete it
            yield tree
        finally:
            _unlock(fd)
        self._prune(git, work)

    def _prune(self, git: MirrorGit, work: Path) -> None:
        def used(mark: Path) -> float:
            try:
                return mark.stat().st_mtime
            except FileNotFoundError:  # pruned by another request just now
                return 0.0

        marks = sorted(work.glob("*.ready"), key=used, reverse=True)
        for mark in marks[self.keep :]:
            commit = mark.name.removesuffix(".ready")
            try:
                fd = _lock(work / f"{commit}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            try:
                mark.unlink(missing_ok=True)
                git.remove_worktree(work / commit)
                shutil.rmtree(work / commit, ignore_errors=True)
            finally:
                _unlock(fd)
