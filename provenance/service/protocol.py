"""The attestation service's wire protocol: length-prefixed JSON over a Unix socket.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one
object. The client sends one request frame; the service answers with any number of event
frames and one final `result` or `error` frame, then closes the connection.

    request  {"provenance": 1, "op": "build", "repository": "/home/a/proj",
              "commit": "<40 or 64 hex>", "subdir": "", "checks": null | ["unit"],
              "force": false, "verifyDeps": false}
             {"provenance": 1, "op": "info"}
    events   {"type": "info" | "warn", "message": "..."}
             {"type": "log", "check": "unit", "line": "..."}
    result   {"type": "result", "report": {...}, "publicKey": "<PEM>", "lines": [...],
              "noteLines": [...], "superseded": [...]}
              (op build; report is `build --json`'s object, publicKey the signing key's)
             {"type": "result", "info": {"keyid": ..., "builderId": ..., "user": ...}}
    error    {"type": "error", "message": "...", "hint": "..." | null, "exitCode": 2,
              ...and the result's fields when some checks failed and others were attested}

Who asks is not part of the request: the service reads the peer's uid and pid from the
socket itself (SO_PEERCRED), which the kernel fills in and the client cannot choose.
Anything that is not exactly a request of this shape is refused with an error frame.
"""

from __future__ import annotations

import json
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

from provenance.errors import ServiceError, UsageError

VERSION = 1
MAX_REQUEST = 64 * 1024  # a request is a path, a commit id and a few names
MAX_RESPONSE = 256 * 1024 * 1024  # a bundle of statements with large closures
_HEADER = struct.Struct(">I")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_CHECK = re.compile(r"^[A-Za-z0-9_'+.-][A-Za-z0-9_'+.-]{0,199}$")  # a Nix attribute name
MAX_PATH = 4096


class ProtocolError(ServiceError):
    """A frame that is not a frame of this protocol (garbage, too large, cut short)."""


@dataclass(frozen=True)
class Peer:
    """The process at the other end of the socket, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


def peer(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _exactly(sock: socket.socket, n: int, what: str, have: bytes = b"") -> bytes:
    """`n` bytes, `have` (what was read already) first."""
    chunks, got = [have], len(have)
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            msg = f"the connection closed in the middle of {what} ({got} of {n} bytes)"
            raise ProtocolError(msg)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket, limit: int) -> dict[str, Any] | None:
    """The next frame's object, or None when the peer closed before sending one."""
    first = sock.recv(_HEADER.size)
    if not first:
        return None
    (size,) = _HEADER.unpack(_exactly(sock, _HEADER.size, "a frame header", first))
    if size > limit:
        msg = (
            f"a frame of {size} bytes is over the {limit}-byte limit "
            "(not a provenance service frame?)"
        )
        raise ProtocolError(msg)
    data = _exactly(sock, size, "a frame")
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        msg = "a frame that is not JSON (not a provenance service frame?)"
        raise ProtocolError(msg) from None
    if not isinstance(obj, dict):
        msg = "a frame that is not a JSON object"
        raise ProtocolError(msg)
    return obj


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildCall:
    """Attest the checks of `commit` of the repository at `repository` (its top level)."""

    repository: str
    commit: str
    subdir: str = ""
    checks: tuple[str, ...] | None = None
    force: bool = False
    verify_deps: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "provenance": VERSION,
            "op": "build",
            "repository": self.repository,
            "commit": self.commit,
            "subdir": self.subdir,
            "checks": list(self.checks) if self.checks is not None else None,
            "force": self.force,
            "verifyDeps": self.verify_deps,
        }


@dataclass(frozen=True)
class InfoCall:
    """Who the service is: its keyid, builder id and user."""

    def as_json(self) -> dict[str, Any]:
        return {"provenance": VERSION, "op": "info"}


_BUILD_FIELDS = {
    "provenance",
    "op",
    "repository",
    "commit",
    "subdir",
    "checks",
    "force",
    "verifyDeps",
}


def _bad(message: str) -> UsageError:
    return UsageError(f"bad request: {message}", "use `provenance build --service SOCKET`")


def _path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PATH:
        raise _bad(f"{what} must be a non-empty string of at most {MAX_PATH} characters")
    if any(c in value for c in "\0\n\r"):
        raise _bad(f"{what} contains a NUL or newline")
    return value


def parse_request(obj: dict[str, Any]) -> BuildCall | InfoCall:
    """The request in a frame; UsageError (exit 2) naming the first thing wrong with it."""
    if obj.get("provenance") != VERSION:
        raise _bad(f"protocol version {obj.get('provenance')!r}, this service speaks {VERSION}")
    op = obj.get("op")
    if op == "info":
        extra = sorted(set(obj) - {"provenance", "op"})
        if extra:
            raise _bad(f"unknown field(s) for info: {', '.join(extra)}")
        return InfoCall()
    if op != "build":
        raise _bad(f"unknown op {op!r} (build or info)")
    unknown = sorted(set(obj) - _BUILD_FIELDS)
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}")
    repository = _path(obj.get("repository"), "repository")
    if not repository.startswith("/"):
        raise _bad("repository must be an absolute path")
    commit = obj.get("commit")
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        raise _bad("commit must be a full commit id (40 or 64 lowercase hex digits)")
    subdir = obj.get("subdir", "")
    if subdir != "":
        subdir = _path(subdir, "subdir")
        parts = subdir.split("/")
        if subdir.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise _bad("subdir must be a plain relative path inside the repository")
    checks = obj.get("checks")
    if checks is not None:
        if not isinstance(checks, list) or not checks or len(checks) > 1000:
            raise _bad("checks must be null or a non-empty list of check names")
        for c in checks:
            if not isinstance(c, str) or not _CHECK.match(c):
                raise _bad(f"{c!r} is not a check name")
    flags = {k: obj.get(k, False) for k in ("force", "verifyDeps")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise _bad(f"{k} must be true or false")
    return BuildCall(
        repository,
        commit,
        subdir,
        tuple(checks) if checks is not None else None,
        flags["force"],
        flags["verifyDeps"],
    )
