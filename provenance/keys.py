"""Ed25519 keys: generate, load, sign, verify.

Files: the private key is PKCS#8 PEM (mode 0600), the public key SubjectPublicKeyInfo
PEM, so `openssl pkey -pubin -in provenance.pub -text` and cosign read them.

keyid = lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo, i.e.
`openssl pkey -pubin -in provenance.pub -outform DER | sha256sum`. It is only a hint in
envelopes; verification always tries the signature against the trusted keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import KeyFileError, UsageError

log = logging.getLogger(__name__)

KEY_ENV = "PROVENANCE_KEY"  # path of the signing key when --key is not given
KEY_NAME, PUB_NAME = "provenance.key", "provenance.pub"


def _keyid(pub: Ed25519PublicKey) -> str:
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


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
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey
    keyid: str

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.keyid)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        msg = f"{what} {path} does not exist"
        raise KeyFileError(msg, "create one with `provenance keygen --out-dir DIR`") from None
    except OSError as e:
        msg = f"cannot read {what} {path}: {e.strerror}"
        raise KeyFileError(msg) from None


def load_signer(path: str | Path) -> Signer:
    """Load an Ed25519 PKCS#8 PEM private key; warn if others can read it."""
    p = Path(path)
    data = _read(p, "signing key")
    try:
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing key %s is readable by other users; run `chmod 600 %s`", p, p)
    except OSError:
        pass
    try:
        key = serialization.load_pem_private_key(data, password=None)
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
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        msg = f"{source} is not a PEM public key"
        raise KeyFileError(msg, "pass the provenance.pub written by `provenance keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        msg = f"{source} is not an Ed25519 public key"
        raise KeyFileError(msg)
    return PublicKey(key, _keyid(key), source)


def generate(out_dir: str | Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """Write DIR/provenance.key (0600) and DIR/provenance.pub; return paths and keyid."""
    d = Path(out_dir)
    key_path, pub_path = d / KEY_NAME, d / PUB_NAME
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
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = PublicKey(key.public_key(), _keyid(key.public_key()))
    _write_new(key_path, pem, 0o600)
    _write_new(pub_path, pub.pem(), 0o644)
    return key_path, pub_path, pub.keyid


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode from the start: the private key is never world-readable,
    # not even for a moment, and a crash leaves the old file or none, never half a key.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
