"""Opt-in git hooks: attest each new commit, push the notes with each push.

`provenance hooks install` adds a marked block to three hooks; `uninstall` removes exactly
those blocks (and a hook file only when nothing else is left in it):

- pre-commit: writes the id of the running `git commit` (the hook's parent pid) to
  `$GIT_DIR/provenance-commit-verified`. With `--no-verify` git runs neither pre-commit
  nor commit-msg, so the marker is absent (or stale, from another process) and...
- post-commit: ...skips. Otherwise it runs `provenance build` for the new HEAD, in the
  background (logging to `$GIT_DIR/provenance-hook.log`) so that it never blocks, and
  never fails, the commit. `PROVENANCE_HOOK_FOREGROUND=1` runs it in the foreground.
  The signing key comes from `$PROVENANCE_KEY` or `git config provenance.key`; without
  one the hook does nothing.
- pre-push: `provenance notes push <remote>`; it never fails the user's push. The nested
  push of the notes passes `--no-verify`, and `PROVENANCE_IN_HOOK` guards against loops.

An existing hook is kept: the block is inserted right after its `#!` line when it is a
POSIX shell script (appended, it would never run after the script's own `exec` or
`exit`, as in pre-commit's hooks; each block is self-contained, reads no stdin and never
fails), and the install is refused otherwise (we cannot safely edit a Python or binary
hook).
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from provenance.doors.git import Git
from provenance.errors import UsageError
from provenance.formats.keys import KEY_ENV
from provenance.formats.uris import flake_subdir

BEGIN = "# >>> provenance hook (added by `provenance hooks install`) >>>"
END = "# <<< provenance hook <<<"
SHEBANG = "#!/bin/sh"
MARKER = "provenance-commit-verified"
LOG = "provenance-hook.log"
_SHELLS = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env sh", "#!/usr/bin/env bash", "#!/bin/dash")


def _provenance_cmd() -> str:
    # The interpreter that runs us now, so the hook works from a venv that is not on PATH;
    # $PROVENANCE_BIN overrides it.
    return f"{shlex.quote(sys.executable)} -m provenance"


def _blocks(flake_subdir: str) -> dict[str, str]:
    prov = f"${{PROVENANCE_BIN:-{_provenance_cmd()}}}"
    # The subdirectory is data: single-quoted, so `$(...)`, `"` or spaces in a directory
    # name are never run or split by the shell on each commit.
    flake = '"$(git rev-parse --show-toplevel)"' + (
        f"/{shlex.quote(flake_subdir)}" if flake_subdir else ""
    )
    return {
        "pre-commit": f"""\
# Tell post-commit that this commit ran its hooks (absent under --no-verify).
echo "$PPID" > "$(git rev-parse --git-path {MARKER})" 2>/dev/null || true
""",
        "post-commit": f"""\
# Attest the new commit unless it was made with --no-verify; never fail the commit.
(
  [ -n "$PROVENANCE_IN_HOOK" ] && exit 0
  marker="$(git rev-parse --git-path {MARKER})"
  [ "$(cat "$marker" 2>/dev/null)" = "$PPID" ] || exit 0
  rm -f "$marker"
  key="${{PROVENANCE_KEY:-$(git config --get provenance.key)}}"
  [ -n "$key" ] || exit 0
  log="$(git rev-parse --git-path {LOG})"
  export PROVENANCE_IN_HOOK=1 PROVENANCE_KEY="$key"
  if [ -n "$PROVENANCE_HOOK_FOREGROUND" ]; then
    {prov} build --quiet {flake} >>"$log" 2>&1
  else
    nohup {prov} build --quiet {flake} >>"$log" 2>&1 </dev/null &
  fi
) || true
""",
        "pre-push": f"""\
# Push the attestation notes along with the user's push; never fail the push.
if [ -z "$PROVENANCE_IN_HOOK" ]; then
  PROVENANCE_IN_HOOK=1 {prov} notes push "$1" \\
    >>"$(git rev-parse --git-path {LOG})" 2>&1 </dev/null || true
fi
""",
    }


@dataclass(frozen=True)
class HookChange:
    hook: str
    path: Path
    action: str  # "created" | "appended" | "unchanged" | "removed-block" | "deleted"


def _strip_block(text: str) -> str | None:
    """`text` without our block, or None when the block is not there."""
    start = text.find(BEGIN)
    if start < 0:
        return None
    end = text.find(END, start)
    if end < 0:
        msg = f"a provenance hook block has no end marker ({END!r})"
        raise UsageError(msg, "remove the block by hand")
    end += len(END)
    if text[end : end + 1] == "\n":
        end += 1
    # Also drop the blank line we put before an appended block.
    if start >= 1 and text[start - 1] == "\n" and text[:start].endswith("\n\n"):
        start -= 1
    return text[:start] + text[end:]


def install(flake_dir: Path) -> list[HookChange]:
    git = Git(flake_dir)
    top = git.toplevel().resolve()
    resolved = flake_dir.resolve()
    subdir = flake_subdir(resolved, top)
    hooks_dir = git.git_path("hooks")
    blocks = _blocks(subdir)
    # Check every hook before touching any: all or nothing.
    plans: list[tuple[str, Path, str, str]] = []
    for hook, body in blocks.items():
        path = hooks_dir / hook
        block = f"{BEGIN}\n{body}{END}\n"
        if not path.exists():
            plans.append((hook, path, f"{SHEBANG}\n{block}", "created"))
            continue
        text = path.read_text(errors="replace")
        if BEGIN in text:
            new = _reinsert(_strip_block(text) or "", block)
            plans.append((hook, path, new, "unchanged" if new == text else "updated"))
            continue
        first = text.splitlines()[0].strip() if text.strip() else ""
        if first not in _SHELLS:
            msg = f"{path} exists and is not a POSIX shell script ({first or 'empty'})"
            raise UsageError(msg, "add a call to `provenance` to it yourself, or move it aside")
        plans.append((hook, path, _reinsert(text, block), "inserted"))
    hooks_dir.mkdir(parents=True, exist_ok=True)
    changes: list[HookChange] = []
    for hook, path, content, action in plans:
        if action != "unchanged":
            path.write_text(content)
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        changes.append(HookChange(hook, path, action))
    return changes


def _reinsert(text: str, block: str) -> str:
    if text.strip() in ("", SHEBANG):
        return f"{SHEBANG}\n{block}"
    # Right after the `#!` line, before anything that could exec or exit:
    # `_strip_block` removes exactly the block again.
    first, _, rest = text.partition("\n")
    return f"{first}\n{block}{rest}"


def signing_key_configured(flake_dir: Path) -> bool:
    """Whether post-commit will find a key ($PROVENANCE_KEY or `git config provenance.key`)."""
    return bool(os.environ.get(KEY_ENV)) or Git(flake_dir).config_get("provenance.key") is not None


def uninstall(flake_dir: Path) -> list[HookChange]:
    git = Git(flake_dir)
    hooks_dir = git.git_path("hooks")
    changes: list[HookChange] = []
    for hook in _blocks(""):
        path = hooks_dir / hook
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        stripped = _strip_block(text)
        if stripped is None:
            continue
        if stripped.strip() in ("", SHEBANG):
            path.unlink()  # we created it: nothing of the user's is in it
            changes.append(HookChange(hook, path, "deleted"))
        else:
            path.write_text(stripped)
            changes.append(HookChange(hook, path, "removed-block"))
    marker = git.git_path(MARKER)
    if marker.exists():
        marker.unlink()
    return changes
