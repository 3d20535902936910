"""DSSE v1 envelopes: sign and verify opaque payload bytes. No I/O.

Spec: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md
Envelope: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/envelope.md

The payload is serialised once by the caller; we sign the PAE of exactly those bytes
and hand back exactly those bytes after verification. Nothing is re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from provenance.errors import AttestationError, VerificationError
from provenance.formats.keys import PublicKey, Signer

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024  # a statement with thousands of deps is ~MBs; more is abuse


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.

    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
    """
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> str:
        """One compact JSON line, as stored in `.intoto.jsonl` bundles."""
        return json.dumps(
            {
                "payloadType": self.payload_type,
                "payload": base64.b64encode(self.payload).decode(),
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()}
                    for s in self.signatures
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse an envelope's JSON; raise AttestationError on any malformation."""
        if len(text) > MAX_ENVELOPE_BYTES:
            msg = f"envelope is {len(text)} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit"
            raise AttestationError(msg)
        try:
            obj = json.loads(text)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit number
            msg = f"envelope is not valid JSON ({e.msg if hasattr(e, 'msg') else e})"
            raise AttestationError(msg) from None
        except RecursionError:  # `[[[[...` a hundred thousand deep, in anyone's note line
            msg = "envelope nests too deeply to be read"
            raise AttestationError(msg) from None
        return cls.from_obj(obj)

    @classmethod
    def from_obj(cls, obj: Any) -> Envelope:
        if not isinstance(obj, dict):
            msg = "envelope is not a JSON object"
            raise AttestationError(msg)
        ptype, payload, sigs = obj.get("payloadType"), obj.get("payload"), obj.get("signatures")
        if not isinstance(ptype, str) or not isinstance(payload, str):
            msg = "envelope lacks a string payloadType or payload"
            raise AttestationError(msg)
        if not isinstance(sigs, list):
            msg = "envelope has no signatures list"
            raise AttestationError(msg)
        parsed: list[Signature] = []
        for s in sigs:
            if not isinstance(s, dict) or not isinstance(s.get("sig"), str):
                msg = "envelope signature entry is malformed"
                raise AttestationError(msg)
            keyid = s.get("keyid", "")
            parsed.append(Signature(keyid if isinstance(keyid, str) else "", _b64(s["sig"])))
        return cls(ptype, _b64(payload), tuple(parsed))


_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _b64(text: str) -> bytes:
    """Decode standard or URL-safe base64 (DSSE allows both), strictly.

    Every character must be in the one alphabet used (the decoders silently drop what they
    do not know unless told otherwise), and padding, if present, must be exact. URL-safe
    text may omit its padding (RFC 4648 section 3.2); standard text may not.
    """
    url = "-" in text or "_" in text
    body = text.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    ok = (
        (_URL_SAFE if url else _STANDARD).fullmatch(text) is not None
        and len(body) % 4 != 1
        and (text == padded or (url and text == body))
    )
    if not ok:
        msg = "envelope field is not valid base64"
        raise AttestationError(msg)
    try:
        if url:
            return base64.b64decode(padded.encode(), altchars=b"-_", validate=True)
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        msg = "envelope field is not valid base64"
        raise AttestationError(msg) from None


def sign(
    payload: bytes, signers: Sequence[Signer], payload_type: str = INTOTO_PAYLOAD_TYPE
) -> Envelope:
    """Sign `payload` (already-serialised bytes) with each signer."""
    message = pae(payload_type, payload)
    return Envelope(
        payload_type,
        payload,
        tuple(Signature(s.keyid, s.sign(message)) for s in signers),
    )


@dataclass(frozen=True)
class Verified:
    """A payload whose signatures checked, and the distinct trusted keys that signed it."""

    payload_type: str
    payload: bytes
    keyids: frozenset[str]


def verify(
    envelope: Envelope,
    trusted: Iterable[PublicKey],
    *,
    payload_type: str = INTOTO_PAYLOAD_TYPE,
    threshold: int = 1,
) -> Verified:
    """Check signatures before anything looks inside the payload.

    Each trusted key counts at most once however many signatures it has (so a repeated
    signature cannot fake a threshold). `keyid` in the envelope is only a hint: every
    signature is tried against every trusted key.
    """
    if envelope.payload_type != payload_type:
        msg = f"payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        raise VerificationError(msg)
    if not envelope.signatures:
        msg = "envelope carries no signatures"
        raise VerificationError(msg)
    message = pae(envelope.payload_type, envelope.payload)
    keys = list(trusted)
    good: set[str] = set()
    for sig in envelope.signatures:
        for key in keys:
            if key.keyid not in good and key.verify(sig.sig, message):
                good.add(key.keyid)
                break
    if len(good) < threshold:
        if not good:
            msg = (
                "no signature verifies against a trusted key (untrusted signer or tampered bundle)"
            )
        else:
            msg = f"only {len(good)} distinct trusted signer(s), policy requires {threshold}"
        raise VerificationError(msg)
    return Verified(envelope.payload_type, envelope.payload, frozenset(good))
