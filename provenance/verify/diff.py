"""Say how two builds of one store path differ, file by file.

Used when a rebuilt output's NAR hash is not the attested one. Nix's own check stops
at the first differing output and hands the rest to a daemon-side diff hook; here every
differing output gets a report. The built-in comparison walks both trees and lists added,
removed and changed entries (type, size, mode, symlink target, and the first differing
line of text files). When `diffoscope` is on PATH its text report is attached as well.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from provenance.doors import proc

MAX_FILES = 200  # a report past this many entries says how many were left out
_TEXT_LIMIT = 1 << 20  # only files up to 1 MiB are compared line by line
_DIFFOSCOPE_LIMIT = 20_000  # characters of diffoscope output kept in the report


@dataclass(frozen=True)
class FileDiff:
    """One entry that differs; `path` is relative to the output root ("" = the root)."""

    path: str
    change: str  # "added" | "removed" | "type" | "content" | "mode" | "target"
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "change": self.change, "detail": self.detail}


def _kind(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "special"


def _entries(root: Path) -> dict[str, os.stat_result]:
    """Relative path -> lstat of every entry under root (root itself is "")."""
    found: dict[str, os.stat_result] = {}
    if not os.path.lexists(root):
        return found
    stack = [""]
    while stack:
        rel = stack.pop()
        p = root / rel if rel else root
        st = p.lstat()
        found[rel] = st
        if stat.S_ISDIR(st.st_mode):
            stack.extend(f"{rel}/{c.name}" if rel else c.name for c in p.iterdir())
    return found


def _first_text_difference(a: Path, b: Path) -> str | None:
    """'line N: -old +new' for small UTF-8 text files, else None."""
    if a.stat().st_size > _TEXT_LIMIT or b.stat().st_size > _TEXT_LIMIT:
        return None
    try:
        la = a.read_bytes().decode().splitlines()
        lb = b.read_bytes().decode().splitlines()
    except UnicodeDecodeError:
        return None
    for n, (x, y) in enumerate(zip(la, lb, strict=False), 1):
        if x != y:
            return f"line {n}: -{x[:120]!r} +{y[:120]!r}"
    if len(la) != len(lb):
        return f"line count {len(la)} -> {len(lb)}"
    return None


def _same_bytes(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 16), fb.read(1 << 16)
            if x != y:
                return False
            if not x:
                return True


def compare_trees(expected: Path, actual: Path) -> list[FileDiff]:
    """Every entry that differs between two trees (files, dirs, symlinks), sorted by path.

    >>> compare_trees(Path("/nix/store/x-out"), Path("/tmp/s/nix/store/x-out"))  # doctest: +SKIP
    [FileDiff(path='result.txt', change='content', detail='5 -> 5 bytes; line 1: ...')]
    """
    left, right = _entries(expected), _entries(actual)
    diffs: list[FileDiff] = []
    for rel in sorted(set(left) | set(right)):
        a, b = left.get(rel), right.get(rel)
        if a is None and b is not None:
            diffs.append(FileDiff(rel, "added", f"{_kind(b)} only in the rebuild"))
            continue
        if b is None and a is not None:
            diffs.append(FileDiff(rel, "removed", f"{_kind(a)} missing from the rebuild"))
            continue
        assert a is not None and b is not None
        ka, kb = _kind(a), _kind(b)
        pa, pb = expected / rel if rel else expected, actual / rel if rel else actual
        if ka != kb:
            diffs.append(FileDiff(rel, "type", f"{ka} -> {kb}"))
        elif ka == "symlink":
            ta, tb = str(pa.readlink()), str(pb.readlink())
            if ta != tb:
                diffs.append(FileDiff(rel, "target", f"{ta} -> {tb}"))
        elif ka == "file":
            # NAR records only the owner-executable bit; other mode bits do not count.
            xa, xb = bool(a.st_mode & stat.S_IXUSR), bool(b.st_mode & stat.S_IXUSR)
            if xa != xb:
                diffs.append(FileDiff(rel, "mode", f"executable {xa} -> {xb}"))
            if a.st_size != b.st_size or not _same_bytes(pa, pb):
                text = _first_text_difference(pa, pb)
                detail = f"{a.st_size} -> {b.st_size} bytes" + (f"; {text}" if text else "")
                diffs.append(FileDiff(rel, "content", detail))
    if len(diffs) > MAX_FILES:
        left_out = len(diffs) - MAX_FILES
        diffs = [
            *diffs[:MAX_FILES],
            FileDiff("...", "truncated", f"{left_out} more entries not shown"),
        ]
    return diffs


def diffoscope(expected: Path, actual: Path) -> str | None:
    """diffoscope's text report, if diffoscope is installed; None otherwise."""
    exe = shutil.which("diffoscope")
    if exe is None:
        return None
    try:
        done = proc.run([exe, "--no-progress", "--text", "-", str(expected), str(actual)])
    except OSError:
        return None
    # diffoscope exits 1 when it found differences; anything else is its own failure.
    if done.returncode not in (0, 1):
        return None
    text = done.stdout.decode(errors="replace")
    return (
        text if len(text) <= _DIFFOSCOPE_LIMIT else text[:_DIFFOSCOPE_LIMIT] + "\n[... truncated]\n"
    )
