"""`.intoto.jsonl` bundles: one DSSE envelope per line, written atomically.

Reading is strict about shape and size (a bundle is untrusted input) but says which
line is wrong, so a user can find it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from provenance.errors import AttestationError, UsageError
from provenance.files import read_regular
from provenance.formats.dsse import MAX_ENVELOPE_BYTES, Envelope

MAX_BUNDLE_BYTES = 64 * 1024 * 1024


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename: all or nothing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        msg = f"cannot write {path}: {e.strerror}"
        raise UsageError(msg) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        msg = f"cannot write {path}: {e.strerror}"
        raise UsageError(msg) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_pairs(data: bytes, source: str) -> list[tuple[bytes, Envelope]]:
    """Each non-blank line with its parsed envelope (verifiers hash the exact line).

    Blank lines are skipped; anything else malformed raises, naming the line.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        msg = f"{source} is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte limit"
        raise AttestationError(msg)
    envelopes: list[tuple[bytes, Envelope]] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        if len(line) > MAX_ENVELOPE_BYTES:
            msg = f"{source} line {n} is over the {MAX_ENVELOPE_BYTES}-byte envelope limit"
            raise AttestationError(msg)
        try:
            envelopes.append((line, Envelope.from_json(line)))
        except AttestationError as e:
            raise AttestationError(f"{source} line {n}: {e.message}") from None
    return envelopes


def read(path: Path) -> list[Envelope]:
    return [env for _, env in read_pairs(path)]


def read_pairs(path: Path) -> list[tuple[bytes, Envelope]]:
    """A bundle file's lines with their envelopes; one clear error for any bad input.

    Only regular files are read (a device such as /dev/zero never ends, a FIFO blocks),
    and never more than MAX_BUNDLE_BYTES + 1 bytes, whatever the file's size says.
    """
    data = read_regular(path, MAX_BUNDLE_BYTES, "bundle", error=AttestationError)
    envelopes = parse_pairs(data, str(path))  # raises, naming the bad line
    if not envelopes:
        msg = f"{path} holds no envelopes"
        raise AttestationError(msg, "is it empty or truncated?")
    return envelopes
