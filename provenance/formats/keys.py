"""Ed25519 keys: generate, load, sign, verify.

Files: the private key is PKCS#8 PEM (mode 0600), the public key SubjectPublicKeyInfo
PEM, so `openssl pkey -pubin -in provenance.pub -text` and cosign read them.

keyid = lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo, i.e.
`openssl pkey -pubin -in provenance.pub -outform DER | sha256sum`. It is only a hint in
envelopes; verification always tries the signature against the trusted keys.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import KeyFileError, UsageError
from provenance.files import read_regular

log = logging.getLogger(__name__)

KEY_ENV = "PROVENANCE_KEY"  # path of the signing key when --key is not given
KEY_NAME, PUB_NAME = "provenance.key", "provenance.pub"


# NOTE: `cryptography...serialization` costs ~25 ms to import, paid on every cache hit an
# agent waits for. Ed25519 keys have fixed DER encodings (RFC 8410), so the common case is
# read and written here with two constant prefixes; anything else goes to cryptography,
# which then explains what the key is instead.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo, Ed25519
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # PKCS#8 v1, Ed25519


def _spki_der(pub: Ed25519PublicKey) -> bytes:
    return _SPKI_PREFIX + pub.public_bytes_raw()


def _keyid(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(_spki_der(pub)).hexdigest()


def _pem_body(data: bytes, label: bytes) -> bytes | None:
    """The DER inside a single PEM block with this label, or None if it is not one."""
    text = data.strip()
    head, tail = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    if not (text.startswith(head) and text.endswith(tail)):
        return None
    body = b"".join(text[len(head) : -len(tail)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError:
        return None
    # Only canonical base64 takes this path; anything else is cryptography's to judge.
    return der if base64.b64encode(der) == body else None


def _pem(der: bytes, label: str) -> str:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    keyid: str
    source: str = ""

    def verify(self, sig: bytes, message: bytes) -> bool:
        try:
            self.key.verify(sig, message)
        except InvalidSignature:
            return False
        return True

    def pem(self) -> bytes:
        return _pem(_spki_der(self.key), "PUBLIC KEY").encode()


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey
    keyid: str

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.keyid)


MAX_KEY_BYTES = 64 * 1024  # a PEM key is a few hundred bytes


def _read(path: Path, what: str) -> bytes:
    # Bounded, regular files only: a FIFO would hang every command, /dev/zero exhaust memory.
    return read_regular(
        path,
        MAX_KEY_BYTES,
        what,
        error=KeyFileError,
        missing_hint="create one with `provenance keygen --out-dir DIR`",
    )


def load_signer(path: str | Path) -> Signer:
    """Load an Ed25519 PKCS#8 PEM private key; warn if others can read it."""
    p = Path(path)
    data = _read(p, "signing key")
    if b"-----BEGIN PUBLIC KEY-----" in data:
        msg = f"{p} is a public key; signing needs the private key"
        raise KeyFileError(msg, "pass the provenance.key written next to it by `provenance keygen`")
    try:
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing key %s is readable by other users; run `chmod 600 %s`", p, p)
    except OSError:
        pass
    der = _pem_body(data, b"PRIVATE KEY")
    if der is not None and len(der) == 48 and der.startswith(_PKCS8_PREFIX):
        fast = Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_PREFIX) :])
        return Signer(fast, _keyid(fast.public_key()))
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see NOTE

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except UnsupportedAlgorithm:
        msg = f"{p} holds a key of an algorithm this tool does not know"
        raise KeyFileError(msg, "generate an Ed25519 key with `provenance keygen`") from None
    except (ValueError, TypeError) as e:
        msg = f"{p} is not an unencrypted PEM private key ({e})"
        raise KeyFileError(msg, "pass the provenance.key written by `provenance keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{p} holds a {type(key).__name__.removeprefix('_')} key, not Ed25519"
        raise KeyFileError(msg, "generate an Ed25519 key with `provenance keygen`")
    return Signer(key, _keyid(key.public_key()))


def load_public_key(path: str | Path) -> PublicKey:
    """Load an Ed25519 SubjectPublicKeyInfo PEM public key from a file."""
    p = Path(path)
    return public_key_from_pem(_read(p, "public key"), str(p))


def public_key_from_pem(data: bytes, source: str) -> PublicKey:
    der = _pem_body(data, b"PUBLIC KEY")
    if der is not None and len(der) == 44 and der.startswith(_SPKI_PREFIX):
        fast = Ed25519PublicKey.from_public_bytes(der[len(_SPKI_PREFIX) :])
        return PublicKey(fast, _keyid(fast), source)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see NOTE

    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm:
        msg = f"{source} holds a public key of an algorithm this tool does not know"
        raise KeyFileError(msg, "trust an Ed25519 key written by `provenance keygen`") from None
    except (ValueError, TypeError):
        msg = f"{source} is not a PEM public key"
        raise KeyFileError(msg, "pass the provenance.pub written by `provenance keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        msg = f"{source} is not an Ed25519 public key"
        raise KeyFileError(msg)
    return PublicKey(key, _keyid(key), source)


_KEY_BASENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def generate(
    out_dir: str | Path, *, force: bool = False, name: str | None = None
) -> tuple[Path, Path, str]:
    """Write DIR/NAME.key (0600) and DIR/NAME.pub (NAME: provenance); paths and keyid.

    A name (`keygen --name alice`) tells signers apart where the file name is all a
    reader sees ("2 of 2 trusted signers (alice.pub, ci.pub)").
    """
    d = Path(out_dir)
    if name is None:
        key_path, pub_path = d / KEY_NAME, d / PUB_NAME
    else:
        if not _KEY_BASENAME.match(name) or name.endswith((".key", ".pub")):
            msg = f"--name {name!r} is not a plain file name"
            raise UsageError(msg, "use letters, digits, '.', '_' or '-', e.g. --name alice")
        key_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    if not force:
        for p in (key_path, pub_path):
            if p.exists():
                msg = f"{p} already exists"
                raise UsageError(msg, "pass --force to overwrite it")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"cannot create {d}: {e.strerror}"
        raise UsageError(msg) from None
    key = Ed25519PrivateKey.generate()
    pem = _pem(_PKCS8_PREFIX + key.private_bytes_raw(), "PRIVATE KEY").encode()
    pub = PublicKey(key.public_key(), _keyid(key.public_key()))
    _write_new(key_path, pem, 0o600)
    _write_new(pub_path, pub.pem(), 0o644)
    return key_path, pub_path, pub.keyid


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode from the start: the private key is never world-readable,
    # not even for a moment, and a crash leaves the old file or none, never half a key.
    # The temp name is random and opened O_EXCL|O_NOFOLLOW: in a shared directory, a
    # planted file or symlink cannot receive the key; fchmod fixes a umask-reduced mode.
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            break
        except FileExistsError:
            continue
        except OSError as e:
            msg = f"cannot write {path}: {e.strerror}"
            raise UsageError(msg) from None
    else:
        msg = f"cannot create a temporary file next to {path}"
        raise UsageError(msg)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
