"""The only door to the system's user database tools (`useradd`), for `serve --setup`."""

from __future__ import annotations

import grp
import pwd
import shutil
from pathlib import Path

from provenance.doors import proc
from provenance.errors import ProvenanceError, UsageError


def ensure_system_user(name: str, home: Path, uid: int | None = None) -> tuple[int, int, bool]:
    """(uid, gid, created) of system user `name`, made with its own group if missing.

    `uid` fixes its uid (and its group's gid); an existing user is taken as it is.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        return entry.pw_uid, entry.pw_gid, False
    shell = shutil.which("nologin") or "/usr/sbin/nologin"
    cmd = ["useradd", "--system", "--user-group", "--no-create-home"]
    if uid is not None:
        try:
            gid = grp.getgrnam(name).gr_gid  # left by an earlier, interrupted setup
        except KeyError:
            _run(["groupadd", "--system", "--gid", str(uid), name], name)
            gid = uid
        cmd = ["useradd", "--system", "--no-create-home", "--uid", str(uid), "--gid", str(gid)]
    cmd += ["--home-dir", str(home), "--shell", shell]
    cmd += ["--comment", "provenance attestation service", name]
    _run(cmd, name)
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, True


def _run(cmd: list[str], name: str) -> None:
    try:
        done = proc.run(cmd)
    except FileNotFoundError:
        msg = f"{cmd[0]} is not installed"
        raise UsageError(msg, f"create the user {name!r} yourself, then run this again") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        msg = f"{cmd[0]} {name} failed: {lines[-1] if lines else f'exit {done.returncode}'}"
        raise ProvenanceError(msg, "run `provenance serve --setup` as root")
