"""Key generation and loading: modes, formats, refusals."""

from __future__ import annotations

import hashlib
import logging
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance import keys
from provenance.errors import KeyFileError, UsageError


def test_generate_writes_0600_pkcs8_and_spki(tmp_path: Path) -> None:
    key, pub, keyid = keys.generate(tmp_path / "k")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
    der = serialization.load_pem_public_key(pub.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert keyid == hashlib.sha256(der).hexdigest()
    assert keys.load_signer(key).keyid == keys.load_public_key(pub).keyid == keyid


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_reads_the_public_key_and_agrees_on_keyid(tmp_path: Path) -> None:
    _, pub, keyid = keys.generate(tmp_path)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(der).hexdigest() == keyid


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    key, _, keyid = keys.generate(tmp_path)
    before = key.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        keys.generate(tmp_path)
    assert key.read_bytes() == before
    _, _, new_id = keys.generate(tmp_path, force=True)
    assert new_id != keyid


def test_missing_and_garbage_and_wrong_type_keys(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load_signer(tmp_path / "nope")
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        keys.load_signer(garbage)
    for name, pk in (
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ec", ec.generate_private_key(ec.SECP256R1())),
    ):
        p = tmp_path / name
        p.write_bytes(
            pk.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        with pytest.raises(KeyFileError, match="not Ed25519"):
            keys.load_signer(p)
        pubp = tmp_path / f"{name}.pub"
        pubp.write_bytes(
            pk.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        with pytest.raises(KeyFileError, match="not an Ed25519"):
            keys.load_public_key(pubp)


def test_world_readable_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key, _, _ = keys.generate(tmp_path)
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="provenance"):
        keys.load_signer(key)
    assert "readable by other users" in caplog.text


def test_fast_pem_path_agrees_with_cryptography(tmp_path: Path) -> None:
    """Keys we write read back in cryptography, and keys it writes read back here, same keyid."""
    key_path, pub_path, keyid = keys.generate(tmp_path / "ours")
    theirs = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(theirs, Ed25519PrivateKey)
    der = theirs.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(der).hexdigest() == keyid
    assert serialization.load_pem_public_key(pub_path.read_bytes()).public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == der

    other = Ed25519PrivateKey.generate()
    p = tmp_path / "theirs.key"
    p.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signer = keys.load_signer(p)
    assert signer.sign(b"m") == other.sign(b"m")  # Ed25519 is deterministic: same key
    pub = tmp_path / "theirs.pub"
    pub.write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert keys.load_public_key(pub).keyid == signer.keyid


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_generated_key_loads(tmp_path: Path) -> None:
    key = tmp_path / "o.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        capture_output=True, check=True,
    ).stdout
    assert keys.load_signer(key).keyid == hashlib.sha256(der).hexdigest()


def test_non_canonical_base64_is_left_to_cryptography(tmp_path: Path) -> None:
    _, pub, _ = keys.generate(tmp_path)
    text = pub.read_text().splitlines()
    body = text[1]
    # Same bytes, different spelling: flip the unused low bits of the last base64 digit.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = body.rstrip("=")[-1]
    tweaked_char = alphabet[alphabet.index(last) ^ 1]
    stripped = body.rstrip("=")
    tweaked = stripped[:-1] + tweaked_char + body[len(stripped):]
    odd = tmp_path / "odd.pub"
    odd.write_text("\n".join([text[0], tweaked, *text[2:]]) + "\n")
    assert keys._pem_body(odd.read_bytes(), b"PUBLIC KEY") is None  # not the fast path
    with pytest.raises(KeyFileError):  # and cryptography refuses it, as before
        keys.load_public_key(odd)
