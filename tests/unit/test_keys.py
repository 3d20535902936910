"""Key generation and loading: modes, formats, refusals."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.errors import KeyFileError, UsageError
from provenance.formats import keys


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
    assert (
        serialization.load_pem_public_key(pub_path.read_bytes()).public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == der
    )

    other = Ed25519PrivateKey.generate()
    p = tmp_path / "theirs.key"
    p.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
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
        capture_output=True,
        check=True,
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
    tweaked = stripped[:-1] + tweaked_char + body[len(stripped) :]
    odd = tmp_path / "odd.pub"
    odd.write_text("\n".join([text[0], tweaked, *text[2:]]) + "\n")
    assert keys._pem_body(odd.read_bytes(), b"PUBLIC KEY") is None  # not the fast path
    with pytest.raises(KeyFileError):  # and cryptography refuses it, as before
        keys.load_public_key(odd)


def _unknown_oid_pems() -> tuple[bytes, bytes]:
    """A PKCS#8 and an SPKI key whose algorithm OID (1.3.6.1.4.1.99999.1) no library knows."""
    oid = bytes.fromhex("06092b06010401868d1f01")
    alg = b"\x30" + bytes([len(oid)]) + oid
    pkcs8 = b"\x02\x01\x00" + alg + b"\x04\x22\x04\x20" + b"\x01" * 32
    spki = alg + b"\x03\x21\x00" + b"\x02" * 32

    def pem(body: bytes, label: bytes) -> bytes:
        der = b"\x30" + bytes([len(body)]) + body
        b64 = base64.encodebytes(der)
        return b"-----BEGIN " + label + b"-----\n" + b64 + b"-----END " + label + b"-----\n"

    return pem(pkcs8, b"PRIVATE KEY"), pem(spki, b"PUBLIC KEY")


def test_a_key_of_an_unknown_algorithm_is_a_clean_error(tmp_path: Path) -> None:
    private, public = _unknown_oid_pems()
    (tmp_path / "k").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    with pytest.raises(KeyFileError, match="an algorithm this tool does not know"):
        keys.load_signer(tmp_path / "k")
    with pytest.raises(KeyFileError, match="an algorithm this tool does not know"):
        keys.load_public_key(tmp_path / "k.pub")


@pytest.mark.parametrize("loader", [keys.load_signer, keys.load_public_key])
def test_a_fifo_or_an_endless_device_is_refused_at_once(
    tmp_path: Path, loader: Callable[[Path], object]
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a plain open() would wait forever
    with pytest.raises(KeyFileError, match="is not a regular file"):
        loader(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")  # read_bytes() would read until MemoryError
    with pytest.raises(KeyFileError, match="is not a regular file"):
        loader(zero)
    huge = tmp_path / "huge"
    huge.write_bytes(b"A" * (keys.MAX_KEY_BYTES + 1))
    with pytest.raises(KeyFileError, match="over the"):
        loader(huge)


def test_a_public_key_passed_as_the_signing_key_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, pub, _ = keys.generate(tmp_path)
    pub.chmod(0o644)
    with caplog.at_level(logging.WARNING), pytest.raises(KeyFileError, match="is a public key"):
        keys.load_signer(pub)
    assert "chmod 600" not in caplog.text  # a public key is meant to be readable


def test_keygen_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    # The old temp name was predictable (.provenance.key.tmp<pid>): a symlink planted there
    # in a shared directory received the private key.
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    out = tmp_path / "keys"
    out.mkdir()
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (out / f".provenance.key.tmp{pid}").symlink_to(victim)
    key, _, _ = keys.generate(out)
    assert victim.read_text() == "untouched\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_keygen_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        _, pub, _ = keys.generate(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644  # fchmod, not the umask, decides


def test_keygen_name_chooses_the_file_names(tmp_path: Path) -> None:
    key, pub, keyid = keys.generate(tmp_path, name="alice")
    assert (key.name, pub.name) == ("alice.key", "alice.pub")
    assert keys.load_signer(key).keyid == keyid == keys.load_public_key(pub).keyid
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    for bad in ("../x", "a/b", "", ".hidden", "x.key"):
        with pytest.raises(UsageError, match="not a plain file name"):
            keys.generate(tmp_path, name=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.key", "alice.pub"]
