"""Hashes that bind an attestation to bytes: NAR SHA-256 of store paths, SHA-256 of logs.

in-toto has no NAR digest type, so a Nix output's subject digest is
`{"sha256": <hex SHA-256 of the NAR serialisation>}`: what
`nix-store --dump PATH | sha256sum` prints. The NAR serialiser here is our own, so a
verifier need not trust `nix` to hash what `nix` built.

NAR format: https://nixos.org/manual/nix/stable/protocols/nix-archive (Dolstra's thesis, fig. 5.2).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from provenance.errors import StoreReadError

_CHUNK = 1 << 20
NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


class _Sink(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _str(sink: _Sink, data: bytes) -> None:
    sink.update(len(data).to_bytes(8, "little"))
    sink.update(data)
    pad = -len(data) % 8
    if pad:
        sink.update(b"\0" * pad)


def _dump(sink: _Sink, root: Path) -> None:
    """Serialise `root` into `sink`, iteratively: an output may nest deeper than Python's
    recursion limit (a hostile check can make 100,000 nested directories)."""
    # The stack holds nodes still to serialise and the tokens that close them.
    stack: list[Path | tuple[bytes, ...]] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            for token in item:
                _str(sink, token)
            continue
        try:
            _node(sink, item, stack)
        except OSError as e:
            msg = f"cannot read {item} to hash it: {e.strerror}"
            raise StoreReadError(
                msg,
                "is the store where nix says? (a chroot store is read at its real path: storeroot.py)",
            ) from None


def _node(sink: _Sink, path: Path, stack: list[Path | tuple[bytes, ...]]) -> None:
    st = path.lstat()
    _str(sink, b"(")
    _str(sink, b"type")
    if stat.S_ISLNK(st.st_mode):
        _str(sink, b"symlink")
        _str(sink, b"target")
        _str(sink, os.fsencode(os.readlink(path)))
    elif stat.S_ISDIR(st.st_mode):
        _str(sink, b"directory")
        stack.append((b")",))
        # NAR orders entries by the raw bytes of their names; pushed last-first so the
        # first name is serialised first.
        for name in sorted((os.fsencode(n) for n in os.listdir(path)), reverse=True):
            stack.append((b")",))
            stack.append(path / os.fsdecode(name))
            stack.append((b"entry", b"(", b"name", name, b"node"))
        return  # the directory's ")" is on the stack, after its entries
    elif stat.S_ISREG(st.st_mode):
        _str(sink, b"regular")
        if st.st_mode & stat.S_IXUSR:
            _str(sink, b"executable")
            _str(sink, b"")
        _str(sink, b"contents")
        sink.update(st.st_size.to_bytes(8, "little"))
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sink.update(chunk)
        pad = -st.st_size % 8
        if pad:
            sink.update(b"\0" * pad)
    else:
        msg = f"{path}: cannot serialise a special file into a NAR"
        raise StoreReadError(msg)
    _str(sink, b")")


def nar_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the NAR serialisation of `path` (a file, directory or symlink).

    >>> nar_sha256("/nix/store/...-det-check")  # doctest: +SKIP
    '341b14a9...'
    """
    h = hashlib.sha256()
    _str(h, b"nix-archive-1")
    _dump(h, Path(path))
    return h.hexdigest()


def _nar_prefix(executable: bool) -> bytes:
    out = bytearray()

    class _Buf:
        def update(self, data: bytes) -> None:
            out.extend(data)

    for token in (b"nix-archive-1", b"(", b"type", b"regular"):
        _str(_Buf(), token)
    if executable:
        _str(_Buf(), b"executable")
        _str(_Buf(), b"")
    _str(_Buf(), b"contents")
    return bytes(out)


_FILE_PREFIX = {False: _nar_prefix(False), True: _nar_prefix(True)}
_FILE_STATE = {x: hashlib.sha256(p) for x, p in _FILE_PREFIX.items()}
_FILE_END = len(b")").to_bytes(8, "little") + b")" + b"\0" * 7


def nar_sha256_of_file(data: bytes, *, executable: bool = False) -> tuple[str, int]:
    """Hex SHA-256 and size of the NAR of a regular file with these contents (a .drv,
    read once for its flags: no second read, no nix call). The NAR framing before the
    contents is the same for every file, so its hash state is computed once."""
    h = _FILE_STATE[executable].copy()
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)
    pad = -len(data) % 8
    h.update(b"\0" * pad + _FILE_END)
    size = len(_FILE_PREFIX[executable]) + 8 + len(data) + pad + len(_FILE_END)
    return h.hexdigest(), size


def nar_bytes(path: str | Path) -> bytes:
    """The whole NAR of `path`; for tests and small paths only."""

    class _Buf:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def update(self, data: bytes) -> None:
            self.parts.append(data)

    buf = _Buf()
    _str(buf, b"nix-archive-1")
    _dump(buf, Path(path))
    return b"".join(buf.parts)


CLOSURE_DIGEST_V1 = "provenance/closure-digest v1"


def closure_digest(entries: Iterable[tuple[str, str]]) -> str:
    """The closure digest of docs/attestation-format.md (`--closure digest`): hex SHA-256
    of one line `<store path> <hex NAR SHA-256>\n` per .drv and source of the build
    closure, sorted by path: the digest of exactly the list `--closure full` signs."""
    h = hashlib.sha256()
    for path, nar in sorted(entries):
        h.update(f"{path} {nar}\n".encode())
    return h.hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def nix32_decode(text: str) -> bytes:
    """Decode Nix's base-32 (as in `sha256:017m...` or store path hashes)."""
    size = len(text) * 5 // 8
    out = bytearray(size)
    for n, char in enumerate(reversed(text)):
        digit = NIX32_ALPHABET.find(char)
        if digit < 0:
            msg = f"invalid nix base-32 character {char!r}"
            raise ValueError(msg)
        b = n * 5
        i, j = divmod(b, 8)
        out[i] |= (digit << j) & 0xFF
        carry = digit >> (8 - j)
        if i < size - 1:
            out[i + 1] |= carry
        elif carry:
            msg = "invalid nix base-32 string (excess bits)"
            raise ValueError(msg)
    return bytes(out)


def sha256_to_hex(value: str) -> str:
    """Normalise any Nix spelling of a SHA-256 to lowercase hex.

    Accepts SRI (`sha256-<base64>`), `sha256:<nix32>`, `sha256:<hex>`, bare hex and
    bare nix32, since Nix versions print narHash in different encodings.
    """
    algo, sep, rest = value.partition("-") if value.startswith("sha256-") else ("", "", value)
    if sep:
        raw = base64.b64decode(rest, validate=True)
    else:
        body = value.removeprefix("sha256:")
        if len(body) == 64:
            raw = bytes.fromhex(body)
        elif len(body) == 52:
            raw = nix32_decode(body)
        elif len(body) == 44:
            raw = base64.b64decode(body, validate=True)
        else:
            msg = f"unrecognised sha256 encoding: {value!r}"
            raise ValueError(msg)
    if len(raw) != 32 or (algo and algo != "sha256"):
        msg = f"not a sha256 digest: {value!r}"
        raise ValueError(msg)
    return raw.hex()
