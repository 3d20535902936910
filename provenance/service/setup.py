"""`provenance serve --setup`: make the service's user, state directory and key, as root.

    STATE/                 0755, the service user's
    STATE/key/             0700: provenance.key (0600), readable by the service user only
    STATE/provenance.pub   0644: the public key, for `provenance trust add NAME PUB --service`
    SOCKET's directory     0755, the service user's (it creates the socket there)

Run again, it changes nothing that exists: the user and the key are kept.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.doors import accounts
from provenance.errors import UsageError
from provenance.formats import keys


@dataclass(frozen=True)
class SetupResult:
    user: str
    uid: int
    state_dir: Path
    key_path: Path
    pub_path: Path
    keyid: str
    socket_path: Path
    created_user: bool
    created_key: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "uid": self.uid,
            "stateDir": str(self.state_dir),
            "key": str(self.key_path),
            "pub": str(self.pub_path),
            "keyid": self.keyid,
            "socket": str(self.socket_path),
            "createdUser": self.created_user,
            "createdKey": self.created_key,
        }


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    path.chmod(mode)


def setup(user: str, state_dir: Path, socket_path: Path, uid: int | None = None) -> SetupResult:
    if os.geteuid() != 0:
        msg = "`provenance serve --setup` creates a user and gives it a key"
        raise UsageError(msg, "run it as root (sudo provenance serve --setup)")
    state_dir, socket_path = state_dir.absolute(), socket_path.absolute()
    uid, gid, created_user = accounts.ensure_system_user(user, state_dir, uid)
    key_dir = state_dir / "key"
    for d, mode in ((state_dir, 0o755), (key_dir, 0o700), (socket_path.parent, 0o755)):
        d.mkdir(parents=True, exist_ok=True)
        _own(d, uid, gid, mode)
    key_path, pub_path = key_dir / keys.KEY_NAME, key_dir / keys.PUB_NAME
    created_key = not key_path.exists()
    if created_key:
        keys.generate(key_dir)
    elif not pub_path.exists():
        pub_path.write_bytes(keys.load_signer(key_path).public.pem())
    for p, mode in ((key_path, 0o600), (pub_path, 0o644)):
        _own(p, uid, gid, mode)
    public = state_dir / keys.PUB_NAME
    shutil.copyfile(pub_path, public)
    _own(public, uid, gid, 0o644)
    keyid = keys.load_public_key(public).keyid
    return SetupResult(
        user, uid, state_dir, key_path, public, keyid, socket_path, created_user, created_key
    )
