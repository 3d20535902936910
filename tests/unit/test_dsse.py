"""DSSE: PAE vector, sign/verify, tampering, thresholds, and securesystemslib as a cross-check."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from provenance.errors import AttestationError, VerificationError
from provenance.formats import dsse
from provenance.formats.keys import Signer, generate, load_signer


@pytest.fixture
def signer(tmp_path) -> Signer:  # type: ignore[no-untyped-def]
    key, _, _ = generate(tmp_path)
    return load_signer(key)


@pytest.fixture
def other(tmp_path) -> Signer:  # type: ignore[no-untyped-def]
    key, _, _ = generate(tmp_path / "other")
    return load_signer(key)


def test_pae_spec_vector() -> None:
    # From the DSSE v1 protocol document.
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_roundtrip_returns_exact_payload_bytes(signer: Signer) -> None:
    payload = b'{"b":1, "a":2}'  # deliberately not canonical: must come back byte for byte
    env = dsse.Envelope.from_json(dsse.sign(payload, [signer]).to_json())
    verified = dsse.verify(env, [signer.public])
    assert verified.payload == payload and verified.keyids == {signer.keyid}


def test_securesystemslib_verifies_our_envelope(signer: Signer) -> None:
    line = dsse.sign(b'{"x":1}', [signer]).to_json()
    env = SslibEnvelope.from_dict(json.loads(line))
    key = SSlibKey.from_crypto(signer.key.public_key(), keyid=signer.keyid)
    verified = env.verify([key], 1)
    assert signer.keyid in verified


def test_flipped_signature_byte_is_rejected(signer: Signer) -> None:
    env = dsse.sign(b"{}", [signer])
    sig = bytearray(env.signatures[0].sig)
    sig[0] ^= 1
    bad = dsse.Envelope(env.payload_type, env.payload, (dsse.Signature(signer.keyid, bytes(sig)),))
    with pytest.raises(VerificationError, match="no signature verifies"):
        dsse.verify(bad, [signer.public])


def test_edited_payload_under_old_signature_is_rejected(signer: Signer) -> None:
    env = dsse.sign(b'{"ok":true}', [signer])
    bad = dsse.Envelope(env.payload_type, b'{"ok":false}', env.signatures)
    with pytest.raises(VerificationError):
        dsse.verify(bad, [signer.public])


def test_untrusted_signer_and_wrong_type(signer: Signer, other: Signer) -> None:
    env = dsse.sign(b"{}", [other])
    with pytest.raises(VerificationError):
        dsse.verify(env, [signer.public])
    typed = dsse.sign(b"{}", [signer], payload_type="text/plain")
    with pytest.raises(VerificationError, match="payloadType"):
        dsse.verify(typed, [signer.public])


def test_repeated_signature_does_not_meet_a_threshold(signer: Signer, other: Signer) -> None:
    env = dsse.sign(b"{}", [signer])
    doubled = dsse.Envelope(env.payload_type, env.payload, env.signatures * 3)
    with pytest.raises(VerificationError, match="only 1 distinct"):
        dsse.verify(doubled, [signer.public, other.public], threshold=2)
    both = dsse.sign(b"{}", [signer, other])
    assert dsse.verify(both, [signer.public, other.public], threshold=2).keyids == {
        signer.keyid,
        other.keyid,
    }


def test_no_signatures_rejected(signer: Signer) -> None:
    env = dsse.Envelope(dsse.INTOTO_PAYLOAD_TYPE, b"{}", ())
    with pytest.raises(VerificationError, match="no signatures"):
        dsse.verify(env, [signer.public])


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"not json",
        b"[1,2]",
        b'{"payloadType": "x"}',
        b'{"payloadType": "x", "payload": "@@@", "signatures": []}',
        b'{"payloadType": "x", "payload": "e30=", "signatures": [{"keyid": "k"}]}',
        b'{"payloadType": "x", "payload": "e30=", "signatures": "nope"}',
    ],
)
def test_malformed_envelopes_raise_attestation_error(text: bytes) -> None:
    with pytest.raises(AttestationError):
        dsse.Envelope.from_json(text)


def test_oversized_envelope_rejected_before_parsing() -> None:
    huge = b'{"payload":"' + b"A" * (dsse.MAX_ENVELOPE_BYTES + 1) + b'"}'
    with pytest.raises(AttestationError, match="limit"):
        dsse.Envelope.from_json(huge)


def test_keyid_is_only_a_hint(signer: Signer) -> None:
    env = dsse.sign(b"{}", [signer])
    renamed = dsse.Envelope(
        env.payload_type, env.payload, (dsse.Signature("bogus", env.signatures[0].sig),)
    )
    assert dsse.verify(renamed, [signer.public]).keyids == {signer.keyid}
    obj = json.loads(renamed.to_json())
    assert base64.b64decode(obj["payload"]) == b"{}"


def _envelope_with_payload(text: str) -> bytes:
    return json.dumps({"payloadType": "x", "payload": text, "signatures": []}).encode()


@pytest.mark.parametrize(
    "text",
    [
        "a-b!c",  # URL-safe with junk: the lenient decoder dropped the `!` and said b"k..."
        "ab-c!!!!",
        "ab-c d__",  # a space inside
        "ab-c\nd__",  # a newline inside
        "ab-+cd==",  # both alphabets mixed
        "ab_/cd==",
        "ab-cd",  # 5 characters: no whole byte can end there
        "ab-cde=",  # wrong padding (needs two `=` or none)
        "ab-c=d==",  # padding inside
        "e30",  # standard alphabet must be padded
        "e30=x",
        "e3\u00e90=",  # non-ASCII
    ],
)
def test_base64_is_decoded_strictly(text: str) -> None:
    with pytest.raises(AttestationError, match="not valid base64"):
        dsse.Envelope.from_json(_envelope_with_payload(text))


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("e30=", b"{}"),  # standard
        ("-_-_", b"\xfb\xff\xbf"),  # URL-safe, no padding needed
        ("-_8", b"\xfb\xff"),  # URL-safe, padding omitted (RFC 4648 3.2)
        ("-_8=", b"\xfb\xff"),  # URL-safe, padded
        ("+/8=", b"\xfb\xff"),  # the same bytes in the standard alphabet
    ],
)
def test_both_alphabets_decode(text: str, payload: bytes) -> None:
    assert dsse.Envelope.from_json(_envelope_with_payload(text)).payload == payload


def test_deeply_nested_json_is_a_clean_error(signer: Signer) -> None:
    # A note line anyone can push: `[` a hundred thousand deep raised RecursionError.
    with pytest.raises(AttestationError, match="nests too deeply"):
        dsse.Envelope.from_json("[" * 100_000)
    signed = dsse.sign(b"[" * 100_000, [signer])  # a key holder may sign garbage too
    payload = dsse.verify(dsse.Envelope.from_json(signed.to_json()), [signer.public]).payload
    from provenance.formats.claims import load_statement  # noqa: PLC0415

    with pytest.raises(AttestationError, match="nests too deeply"):
        load_statement(payload)
