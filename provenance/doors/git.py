"""The only door to `git`: repository facts and git notes.

Attestations live as JSONL notes under `refs/notes/provenance`, one DSSE envelope per
line. Writers union lines (never clobber), under a lock so that concurrent writers on
one machine lose nothing; across machines notes.py unions per annotated commit with the
primitives here (never `git notes merge`, whose fast-forward and three-way merge drop
lines the other side deleted).
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provenance.doors import proc
from provenance.doors.giterrors import git_message
from provenance.errors import GitError, UsageError

__all__ = [
    "NOTES_REF",
    "Git",
    "TreeChange",
    "TreeStatus",
    "git_message",
]  # git_message: giterrors.py

NOTES_REF = "refs/notes/provenance"
# Used only when the user has no identity configured: notes commits need one.
_FALLBACK_IDENTITY = ["-c", "user.name=provenance", "-c", "user.email=provenance@localhost"]


@dataclass(frozen=True)
class TreeStatus:
    modified: tuple[str, ...]  # tracked files that differ from HEAD (staged or not)
    untracked: tuple[str, ...]

    @property
    def dirty(self) -> bool:
        return bool(self.modified)


@dataclass(frozen=True)
class TreeChange:
    """One path that differs between two commits: `mode blob` on each side, None if absent."""

    path: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "deleted" if self.after is None else "modified"


class Git:
    def __init__(self, repo: str | Path, git_bin: str = "git") -> None:
        self.repo = str(repo)
        self.git_bin = git_bin
        self._common: str | None = None  # the common dir, when head() learned it

    def _run(
        self,
        *args: str,
        stdin: bytes | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> proc.Completed:
        cmd = [self.git_bin, "-C", self.repo, *args]
        try:
            done = proc.run(cmd, stdin=stdin, env=env)
        except FileNotFoundError:
            msg = "git is not installed"
            raise GitError(msg, "install it, e.g. `apt-get install git`") from None
        if check and done.returncode != 0:
            self._refuse_if_not_a_repo(done)
            msg = f"git {args[0]} failed: {git_message(done.stderr)}"
            raise GitError(msg)
        return done

    def _refuse_if_not_a_repo(self, done: proc.Completed) -> None:
        # Not git's failure but the user's input (docs/cli.md: exit 2), whatever the command.
        if "not a git repository" in done.stderr:
            msg = f"{self.repo} is not inside a git repository"
            raise UsageError(msg, "run it in a repository, or pass one with --repo/-C")

    def init_commit_all(self, message: str) -> str:
        """`git init`, add everything, commit; for the built-in example and fixtures."""
        self._run("init", "-q")
        self._run("add", "-A")
        self._run(*self._identity(), "commit", "-q", "--no-verify", "-m", message)
        return self.rev_parse("HEAD")

    def toplevel(self) -> Path:
        done = self._run("rev-parse", "--show-toplevel", check=False)
        if done.returncode != 0:
            msg = f"{self.repo} is not inside a git repository"
            raise UsageError(msg, "run `git init && git add -A && git commit` first")
        return Path(done.stdout.decode().strip())

    def head(self) -> tuple[Path, str]:
        """The work tree's top and HEAD's commit in one call (the common dir kept too)."""
        args = ("--show-toplevel", "--git-common-dir", "--verify", "--quiet", "HEAD^{commit}")
        lines = self._run("rev-parse", *args, check=False).stdout.decode().splitlines()
        if len(lines) != 3:  # not a repository, or no commit yet
            return self.toplevel(), self.rev_parse("HEAD")  # each says what is wrong
        self._common = lines[1]
        return Path(lines[0]), lines[2]

    def rev_parse(self, rev: str = "HEAD") -> str:
        done = self._run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if done.returncode != 0:
            if rev == "HEAD":
                msg = f"{self.repo} has no commits yet"
                raise UsageError(msg, "commit your work first: attestations attach to a commit")
            msg = f"{rev!r} is not a commit in {self.repo}"
            raise UsageError(msg)
        return done.stdout.decode().strip()

    def status(self) -> TreeStatus:
        out = self._run("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout.decode()
        modified: list[str] = []
        untracked: list[str] = []
        entries = iter(out.split("\0"))
        for entry in entries:
            if not entry:
                continue
            code, path = entry[:2], entry[3:]
            if code == "??":
                untracked.append(path)
            elif code != "!!":
                modified.append(path)
                if "R" in code or "C" in code:
                    next(entries, None)  # the rename's source path follows
        return TreeStatus(tuple(modified), tuple(untracked))

    # -- notes ------------------------------------------------------------------------

    def note(self, rev: str, ref: str = NOTES_REF) -> bytes | None:
        done = self._run("notes", "--ref", ref, "show", rev, check=False)
        return done.stdout if done.returncode == 0 else None

    def config_get(self, name: str) -> str | None:
        """`git config --get NAME`, or None when it is not set."""
        done = self._run("config", "--get", name, check=False)
        value = done.stdout.decode(errors="replace").strip()
        return (value or None) if done.returncode == 0 else None

    def _identity(self) -> list[str]:
        ok = self._run("var", "GIT_COMMITTER_IDENT", check=False).returncode == 0
        return [] if ok else _FALLBACK_IDENTITY

    @contextmanager
    def _notes_lock(self) -> Iterator[None]:
        # The common dir, not --absolute-git-dir: notes refs are shared by every linked
        # worktree, so their writers must share one lock too.
        common = self._common or self._run("rev-parse", "--git-common-dir").stdout.decode().strip()
        git_dir = Path(self.repo, common) if not Path(common).is_absolute() else Path(common)
        with (git_dir / "provenance-notes.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add_note_lines(
        self,
        rev: str,
        lines: list[str],
        ref: str = NOTES_REF,
        drop: Collection[str] = (),
    ) -> int:
        """Union `lines` into the note on `rev`; return how many were new.

        Existing lines are kept byte for byte and in order, except exact lines in `drop`
        (statements the caller has just superseded); new ones are appended. The note is
        replaced in one ref update, so a crash leaves the old note or the new.
        """
        # Bytes throughout, split on b"\n" only: other tools' lines (any encoding, U+2028
        # inside JSON strings, a stray \r) come back exactly as they were.
        dropped = {ln.encode() for ln in drop}
        with self._notes_lock():
            current = [ln for ln in (self.note(rev, ref) or b"").split(b"\n") if ln.strip()]
            existing = [ln for ln in current if ln not in dropped]
            new: list[bytes] = []
            seen = set(existing)
            for ln in (line.encode() for line in lines):
                if ln not in seen:
                    seen.add(ln)
                    new.append(ln)
            if not new and len(existing) == len(current):
                return 0
            body = b"\n".join([*existing, *new]) + b"\n"
            # NOTE: `notes add -F` would run git's stripspace over the text (trailing
            # blanks, \r); a blob passed with -C is taken exactly as written.
            blob = self._run("hash-object", "-w", "--stdin", stdin=body).stdout.decode().strip()
            self._run(*self._identity(), "notes", "--ref", ref, "add", "-f", "-C", blob, rev)
            return len(new)

    def remote_url(self, remote: str = "origin") -> str | None:
        """The URL of `remote`, or None when it is not configured (a local-only repo)."""
        done = self._run("config", "--get", f"remote.{remote}.url", check=False)
        url = done.stdout.decode().strip()
        return url if done.returncode == 0 and url else None

    # -- sync and history (notes sync, gate, hooks) -------------------------------------

    def remotes(self) -> list[str]:
        out = self._run("remote").stdout.decode()
        return [r for r in out.split() if r]

    def ref_exists(self, ref: str) -> bool:
        done = self._run("rev-parse", "--verify", "--quiet", ref, check=False)
        return done.returncode == 0

    def refs(self, names: list[str]) -> dict[str, str]:
        """Which of these full ref names exist: name -> the object it points at (one call).

        Exact names only: for-each-ref also matches refs *under* a name, which are dropped.
        """
        fmt = "--format=%(objectname) %(refname)"
        out = self._run("for-each-ref", fmt, "--", *names).stdout.decode()
        found: dict[str, str] = {}
        for line in out.splitlines():
            obj, _, ref = line.partition(" ")
            if ref in names:
                found[ref] = obj
        return found

    def fetch_notes(self, remote: str, into: str, ref: str = NOTES_REF) -> bool:
        """Fetch the remote's notes ref into `into` (forced); False if the remote has none."""
        done = self._run("fetch", "--quiet", "--no-tags", remote, f"+{ref}:{into}", check=False)
        if done.returncode == 0:
            return True
        if "couldn't find remote ref" in done.stderr:
            return False
        self._refuse_if_not_a_repo(done)
        msg = f"git fetch {remote} failed: {git_message(done.stderr)}"
        raise GitError(msg, "check the remote's URL and your access to it")

    @contextmanager
    def notes_lock(self) -> Iterator[None]:
        """Hold the lock every writer of notes refs takes (not re-entrant: flock)."""
        with self._notes_lock():
            yield

    def resolve_ref(self, ref: str) -> str | None:
        """The commit a full ref name points at, or None when there is no such ref."""
        done = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.decode().strip() if done.returncode == 0 else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        done = self._run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        if done.returncode not in (0, 1):
            msg = f"git merge-base failed: {git_message(done.stderr)}"
            raise GitError(msg)
        return done.returncode == 0

    def write_blobs(self, bodies: list[bytes]) -> list[str]:
        """Store blobs; their ids in the same order (one `git hash-object` call)."""
        if not bodies:
            return []
        with tempfile.TemporaryDirectory(prefix="provenance-blobs-") as tmp:
            paths = []
            for i, body in enumerate(bodies):
                path = Path(tmp, str(i))
                path.write_bytes(body)
                paths.append(str(path))
            # --no-filters: the bytes as given, whatever .gitattributes says.
            out = self._run(
                "hash-object",
                "-w",
                "--no-filters",
                "--stdin-paths",
                stdin=("\n".join(paths) + "\n").encode(),
            ).stdout
        ids = out.decode().split()
        if len(ids) != len(bodies):
            msg = "git hash-object returned the wrong number of ids"
            raise GitError(msg)
        return ids

    def commit_notes_tree(self, notes: dict[str, str], parents: list[str], message: str) -> str:
        """A notes commit: one flat tree (annotated commit -> note blob), these parents.

        Git reads notes trees with or without fan-out directories, so a flat tree is a
        valid notes tree; git re-fans it out itself when it next adds a note.
        """
        entries = "".join(
            f"100644 blob {blob}\t{commit}\0" for commit, blob in sorted(notes.items())
        )
        tree = self._run("mktree", "-z", stdin=entries.encode()).stdout.decode().strip()
        args = [*self._identity(), "commit-tree", tree, "-m", message]
        for p in parents:
            args += ["-p", p]
        return self._run(*args).stdout.decode().strip()

    def update_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Move `ref` to `new` only if it still points at `old` (None: must not exist yet)."""
        expected = old if old is not None else "0" * len(new)
        done = self._run("update-ref", ref, new, expected, check=False)
        return done.returncode == 0

    def push_notes(self, remote: str, ref: str = NOTES_REF) -> bool:
        """Push `ref` to the same ref on `remote`; False when rejected as not fast-forward."""
        done = self._run(
            "push", "--quiet", "--porcelain", "--no-verify", remote, f"{ref}:{ref}", check=False
        )
        if done.returncode == 0:
            return True
        text = done.stderr + done.stdout.decode(errors="replace")
        if "[rejected]" in text or "fetch first" in text or "non-fast-forward" in text:
            return False
        self._refuse_if_not_a_repo(done)
        msg = f"git push {remote} failed: {git_message(done.stderr)}"
        raise GitError(msg, "check the remote's URL and your push access to it")

    def rev_list(self, rev: str, max_count: int) -> list[str]:
        """`rev` and its ancestors, newest first, at most `max_count` commits."""
        out = self._run("rev-list", f"--max-count={max_count}", rev, "--").stdout.decode()
        return out.split()

    def notes_index(self, ref: str = NOTES_REF) -> dict[str, str]:
        """Every annotated commit under `ref` -> its note's blob id (one git call)."""
        done = self._run("notes", "--ref", ref, "list", check=False)
        if done.returncode != 0:
            return {}  # no notes ref yet
        index: dict[str, str] = {}
        for line in done.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) == 2:
                index[parts[1]] = parts[0]
        return index

    def read_blobs(self, blobs: list[str]) -> dict[str, bytes]:
        """Contents of several blobs in one `git cat-file --batch` call."""
        if not blobs:
            return {}
        out = self._run("cat-file", "--batch", stdin=("\n".join(blobs) + "\n").encode()).stdout
        found: dict[str, bytes] = {}
        pos = 0
        for blob in blobs:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            pos = end + 1
            if len(header) != 3:  # "<id> missing"
                continue
            size = int(header[2])
            found[blob] = out[pos : pos + size]
            pos += size + 1
        return found

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Repository paths whose content, mode or presence differs between two commits.

        One call: git compares the trees and skips identical subtrees by id. No
        pathspec is passed, so GIT_*_PATHSPECS settings cannot narrow the answer.
        """
        out = self._run("diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new).stdout
        return [p for p in out.decode(errors="surrogateescape").split("\0") if p]

    def changed_entries(self, old: str, new: str) -> list[TreeChange]:
        """`changed_paths` with the mode and blob id on each side (None: absent there).

        The ids are what an approval names, so an approval of one edit of a file does
        not cover a later, different edit of the same file.
        """
        out = self._run("diff-tree", "-r", "-z", "--no-renames", old, new).stdout
        fields = out.decode(errors="surrogateescape").split("\0")
        changes: list[TreeChange] = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            parts = meta.lstrip(":").split()
            if len(parts) != 5 or not path:
                continue
            old_mode, new_mode, old_blob, new_blob, _ = parts
            before = None if set(old_blob) == {"0"} else f"{old_mode} {old_blob}"
            after = None if set(new_blob) == {"0"} else f"{new_mode} {new_blob}"
            changes.append(TreeChange(path, before, after))
        return changes

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits, or None when they share no history."""
        done = self._run("merge-base", a, b, check=False)
        if done.returncode == 1:
            return None
        if done.returncode != 0:
            msg = f"git merge-base failed: {git_message(done.stderr)}"
            raise GitError(msg)
        return done.stdout.decode().strip() or None

    def current_branch(self) -> str | None:
        """The branch HEAD is on (short name), or None when detached or not a repository."""
        done = self._run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        name = done.stdout.decode(errors="replace").strip()
        return name if done.returncode == 0 and name else None

    def show_file(self, rev: str, path: str) -> bytes | None:
        """The file `path` as it is at `rev`, or None when absent there."""
        done = self._run("show", f"{rev}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None

    def git_path(self, name: str) -> Path:
        """Absolute path of `name` inside the git dir (honours core.hooksPath for hooks)."""
        if name == "hooks":
            hooks = self._run("config", "--get", "core.hooksPath", check=False)
            if hooks.returncode == 0 and hooks.stdout.strip():
                path = Path(hooks.stdout.decode().strip())
                return path if path.is_absolute() else self.toplevel() / path
        out = self._run("rev-parse", "--git-path", name).stdout.decode().strip()
        path = Path(out)
        return path if path.is_absolute() else Path(self.repo) / path
