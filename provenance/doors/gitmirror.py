"""Git for the attestation service's mirror (provenance/service/mirror.py): a bare
repository of the service's own, the commits requesters ask about fetched into it, and
one detached work tree per commit.

Apart from git.py because these are the only git calls that reach into a repository
someone else owns (`fetch_commit`), and what that takes is best read in one place.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from provenance.doors.git import Git, git_message
from provenance.errors import GitError, UsageError


def _git_dirs(top: str) -> list[str]:
    """The directories git checks the owner of when it serves the repository at `top`:
    the work tree, its `.git`, and for a linked work tree (`.git` is a file) the git dir it
    names and that one's common dir."""
    dirs = [top, os.path.join(top, ".git")]
    try:
        with open(os.path.join(top, ".git"), encoding="utf-8") as f:
            first = f.readline(4096).strip()
    except OSError:  # a directory, or unreadable: git says so itself
        return dirs
    if first.startswith("gitdir: "):
        gitdir = os.path.normpath(os.path.join(top, first.removeprefix("gitdir: ")))
        dirs.append(gitdir)
        try:
            with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
                common = f.readline(4096).strip()
            dirs.append(os.path.normpath(os.path.join(gitdir, common)))
        except OSError:
            pass
    return dirs


class MirrorGit(Git):
    """A repository the service owns; `Git`'s operations plus the ones below."""

    def has_commit(self, commit: str) -> bool:
        done = self._run("cat-file", "-e", f"{commit}^{{commit}}", check=False)
        return done.returncode == 0

    def init_bare(self) -> None:
        self._run("init", "-q", "--bare")
        # The mirror keeps every commit it was asked about (refs below); never let an
        # automatic gc run in the middle of a request.
        self._run("config", "gc.auto", "0")

    def fetch_commit(self, source: str, commit: str) -> None:
        """Fetch `commit` (and its history) from the repository at `source` into this one.

        `source` belongs to someone else: git runs `upload-pack` in it, as us, and reads
        its configuration. So only the file transport is allowed (no `ext::` or ssh
        command a crafted remote or promisor could name), lazy fetching is off (a partial
        clone's promisor fetch would run that repository's commands: CVE-2024-32004), and
        `safe.directory` names exactly this one repository (git refuses a repository
        another user owns otherwise). The commit is kept under a ref of its own, so it
        stays reachable. A commit id names its whole tree: nothing can be swapped under it.
        """
        # Git clears GIT_CONFIG_* for the upload-pack of a local fetch, so its settings go
        # on its own command line (run by the shell: every word quoted).
        config = [
            *(f"safe.directory={d}" for d in _git_dirs(source)),
            "protocol.allow=never",
            "protocol.file.allow=always",
            "uploadpack.allowAnySHA1InWant=true",
        ]
        upload_pack = " ".join(
            [
                "GIT_NO_LAZY_FETCH=1 GIT_ALLOW_PROTOCOL=file",
                shlex.quote(self.git_bin),
                *(f"-c {shlex.quote(c)}" for c in config),
                "upload-pack",
            ]
        )
        env = {
            **os.environ,
            "GIT_NO_LAZY_FETCH": "1",
            "GIT_ALLOW_PROTOCOL": "file",
            "GIT_TERMINAL_PROMPT": "0",
        }
        done = self._run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            f"--upload-pack={upload_pack}",
            "--",
            source,
            f"+{commit}:refs/provenance/commits/{commit}",
            check=False,
            env=env,
        )
        if done.returncode != 0:
            why = git_message(done.stderr)
            if "not our ref" in why or "no such remote ref" in why or "unadvertised" in why:
                msg = f"commit {commit} is not in the repository {source}"
                raise UsageError(msg, "commit your work there first, then ask again")
            msg = f"cannot fetch {commit[:12]} from {source}: {why}"
            raise GitError(msg, "check that the service's user can read the repository")

    def add_worktree(self, path: Path, commit: str) -> None:
        """A detached work tree of `commit` at `path` (which must not exist)."""
        self._run("worktree", "add", "--quiet", "--detach", str(path), commit)

    def remove_worktree(self, path: Path) -> None:
        """Forget the work tree at `path` (the caller deletes what is left of it)."""
        self._run("worktree", "remove", "--force", "--force", str(path), check=False)
        self._run("worktree", "prune", check=False)
