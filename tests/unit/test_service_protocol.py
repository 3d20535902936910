"""The service's wire protocol: frames, limits, the peer's credentials, request checking."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from provenance.errors import UsageError
from provenance.service import protocol
from provenance.service.protocol import BuildCall, InfoCall, ProtocolError, parse_request


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        yield a, b


def test_a_frame_goes_through_whole(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    obj = {"type": "log", "line": "ü" * 100_000}  # more than one recv's worth
    protocol.send(a, obj)
    assert protocol.recv(b, protocol.MAX_RESPONSE) == obj


def test_a_peer_that_closes_before_a_frame_is_none(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.close()
    assert protocol.recv(b, protocol.MAX_REQUEST) is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (struct.pack(">I", 2**32 - 1), "over the 65536-byte limit"),
        (b"\x00\x00", "in the middle of a frame header (2 of 4 bytes)"),
        (struct.pack(">I", 10) + b"{}", "in the middle of a frame (2 of 10 bytes)"),
        (struct.pack(">I", 5) + b"hello", "not JSON"),
        (struct.pack(">I", 2) + b"\xff\xfe", "not JSON"),
        (struct.pack(">I", 2) + b"[]", "not a JSON object"),
        (struct.pack(">I", 20_000) + b"[" * 20_000, "not JSON"),
    ],
    ids=["huge", "short-header", "short-body", "text", "not-utf8", "array", "deep"],
)
def test_what_is_not_a_frame(
    pair: tuple[socket.socket, socket.socket], data: bytes, says: str
) -> None:
    a, b = pair
    a.sendall(data)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError) as e:
        protocol.recv(b, protocol.MAX_REQUEST)
    assert says in e.value.message


def test_the_peer_is_who_the_kernel_says(pair: tuple[socket.socket, socket.socket]) -> None:
    who = protocol.peer(pair[0])
    assert (who.pid, who.uid, who.gid) == (os.getpid(), os.getuid(), os.getgid())


COMMIT = "a" * 40
GOOD = {"provenance": 1, "op": "build", "repository": "/home/a/proj", "commit": COMMIT}


def test_a_build_request_and_its_defaults() -> None:
    assert parse_request(GOOD) == BuildCall("/home/a/proj", COMMIT)
    call = BuildCall("/r", "b" * 64, "sub/dir", ("unit", "lint"), force=True, verify_deps=True)
    assert parse_request(call.as_json()) == call
    assert parse_request({"provenance": 1, "op": "info"}) == InfoCall()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"provenance": 2}, "protocol version 2"),
        ({"op": "sign"}, "unknown op 'sign'"),
        ({"allowDirty": True}, "unknown field(s): allowDirty"),
        ({"signer": "x", "key": "/k"}, "unknown field(s): key, signer"),
        ({"repository": "relative/path"}, "absolute path"),
        ({"repository": "/a\nb"}, "NUL or newline"),
        ({"repository": "/" + "a" * 5000}, "at most 4096"),
        ({"repository": 7}, "non-empty string"),
        ({"commit": "HEAD"}, "full commit id"),
        ({"commit": COMMIT.upper()}, "full commit id"),
        ({"commit": COMMIT[:39]}, "full commit id"),
        ({"subdir": "../other"}, "plain relative path"),
        ({"subdir": "/abs"}, "plain relative path"),
        ({"subdir": "a//b"}, "plain relative path"),
        ({"checks": []}, "non-empty list"),
        ({"checks": "unit"}, "non-empty list"),
        ({"checks": ["ok", "bad name"]}, "'bad name' is not a check name"),
        ({"checks": [{"x": 1}]}, "is not a check name"),
        ({"force": "yes"}, "force must be true or false"),
        ({"verifyDeps": 1}, "verifyDeps must be true or false"),
    ],
)
def test_what_is_not_a_request(change: dict[str, object], says: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_request({**GOOD, **change})
    assert says in e.value.message
    assert e.value.message.startswith("bad request: ")


def test_info_takes_nothing_else() -> None:
    with pytest.raises(UsageError, match="unknown field"):
        parse_request({"provenance": 1, "op": "info", "repository": "/x"})


def test_the_services_environment_is_its_own() -> None:
    # What the launcher's environment holds besides the service's own Nix settings (a
    # user's git config, config dirs, a key, anything) never reaches its nix and git.
    from pathlib import Path  # noqa: PLC0415

    from provenance.service.server import clean_environment  # noqa: PLC0415

    launcher = {
        "PATH": "/usr/bin",
        "NIX_REMOTE": "daemon",
        "NIX_CONFIG": "sandbox = true",
        "HOME": "/home/admin",
        "XDG_CONFIG_HOME": "/home/admin/.config",
        "XDG_CONFIG_DIRS": "/etc/xdg:/evil",
        "GIT_DIR": "/elsewhere",
        "GIT_CONFIG_GLOBAL": "/home/admin/.gitconfig",
        "PROVENANCE_KEY": "/home/admin/key",
        "LD_PRELOAD": "/evil.so",
        "PYTHONPATH": "/evil",
    }
    env = clean_environment(launcher, Path("/var/lib/provenance"))
    assert env["HOME"] == "/var/lib/provenance"
    assert env["XDG_CONFIG_HOME"] == "/var/lib/provenance/config"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert (env["PATH"], env["NIX_REMOTE"], env["NIX_CONFIG"]) == (
        "/usr/bin",
        "daemon",
        "sandbox = true",
    )
    for gone in ("XDG_CONFIG_DIRS", "GIT_DIR", "PROVENANCE_KEY", "LD_PRELOAD", "PYTHONPATH"):
        assert gone not in env
