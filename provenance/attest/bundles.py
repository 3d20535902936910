"""Where `provenance build` writes its bundle, and how a run's lines join the ones there.

A bundle is named per commit *and* signing key, and a dirty tree's apart:
`<commit>.<keyid>.intoto.jsonl`, `<commit>.<keyid>.dirty.intoto.jsonl`. One key's run
never replaces another key's attestations, and a dirty run never replaces a clean
one (with `--no-note` the bundle is the only copy). Earlier versions wrote
`<commit>.intoto.jsonl` for everyone: it is never written again, and this key's lines
in it are carried into the new name the first time it is written.

A run merges into the file under an exclusive lock on its directory: a line stays
unless this key re-attested the same check (predicate type and attribute) with the same
dirtiness in this run. So two builds of different checks of one commit, one after the
other or at once, leave both checks' lines; lines of other keys (in a shared `--output`
file) are never dropped, and lines that are not ours to judge are kept as they are.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

from provenance.errors import AttestationError, ProvenanceError, UsageError, VerificationError
from provenance.files import read_regular
from provenance.formats import bundle, dsse
from provenance.formats.claims import load_statement
from provenance.formats.keys import PublicKey
from provenance.formats.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01

SUFFIX = ".intoto.jsonl"


def default_name(commit: str, keyid: str, dirty: bool) -> str:
    return f"{commit}.{keyid}{'.dirty' if dirty else ''}{SUFFIX}"


def legacy_name(commit: str) -> str:
    """The name every key shared before bundles were named per key (read, never written)."""
    return f"{commit}{SUFFIX}"


Identity = tuple[str, str, bool]  # (predicateType, attribute, dirty)


def _identity(payload: bytes) -> Identity | None:
    """Which check (and which kind of statement about it) a line of ours is, or None."""
    try:
        stmt = load_statement(payload)
    except AttestationError:
        return None
    pred = stmt.get("predicate")
    pred = pred if isinstance(pred, dict) else {}
    ptype = stmt.get("predicateType")
    if ptype == SLSA_PROVENANCE_V1:
        definition = pred.get("buildDefinition")  # any JSON: this key may have signed junk
        ext = definition.get("externalParameters") if isinstance(definition, dict) else None
        attribute = ext.get("attribute") if isinstance(ext, dict) else None
        source = ext.get("source") if isinstance(ext, dict) else None
        dirty = not (isinstance(source, dict) and source.get("dirty") is False)
    elif ptype == TEST_RESULT_V01:
        attribute, dirty = None, True
        configuration = pred.get("configuration")
        for entry in configuration if isinstance(configuration, list) else []:
            notes = entry.get("annotations") if isinstance(entry, dict) else None
            if not isinstance(notes, dict):
                continue
            if notes.get("kind") == "derivation":
                attribute = notes.get("attribute")
            elif entry.get("name") == "source":
                dirty = notes.get("dirty") is not False
    else:
        return None
    return (ptype, attribute, dirty) if isinstance(attribute, str) else None


def _ours(line: bytes, key: PublicKey) -> Identity | None:
    """The identity of a line this key signed; None for anyone else's, or junk."""
    try:
        env = dsse.Envelope.from_json(line)
        payload = dsse.verify(env, [key]).payload
    except (AttestationError, VerificationError):
        return None
    return _identity(payload)


def _lines(path: Path) -> list[bytes]:
    """The envelope lines of the bundle at `path` ([] if there is none).

    A file there that is not a bundle (an `--output` typo naming a README, say) is an
    error naming its first bad line: nothing is written into it.
    """
    if not os.path.lexists(path):
        return []
    data = read_regular(path, bundle.MAX_BUNDLE_BYTES, "bundle")
    try:
        pairs = bundle.parse_pairs(data, str(path))
    except AttestationError as e:
        msg = f"{e.message}: it is not a bundle, so nothing was written into it"
        raise UsageError(msg, "pass another --output, or move the file away") from None
    return [raw for raw, _ in pairs]  # bytes as they are: other keys' lines are kept exactly


def _legacy(path: Path) -> list[bytes]:
    # An old shared bundle that cannot be read is not this run's to fix: it is left alone.
    try:
        return _lines(path)
    except ProvenanceError:
        return []


def merged(existing: Sequence[bytes], new: Sequence[bytes], key: PublicKey) -> list[bytes]:
    """`existing` without what `new` supersedes (this key, same check, same dirtiness),
    then `new`; each line once, in order."""
    replaced = {i for ln in new if (i := _ours(ln, key)) is not None}
    fresh = set(new)
    kept = [ln for ln in existing if ln in fresh or _ours(ln, key) not in replaced]
    out: list[bytes] = []
    seen: set[bytes] = set()
    for ln in [*kept, *new]:
        if ln not in seen:
            seen.add(ln)
            out.append(ln)
    return out


def write(path: Path, lines: Sequence[str], key: PublicKey, legacy: Path | None = None) -> None:
    """Merge `new` into the bundle at `path` (see the module docstring), atomically.

    `legacy`: a `<commit>.intoto.jsonl` of an earlier version, whose lines signed by
    `key` with the same dirtiness as `lines` seed a bundle not yet written under `path`.
    """
    new = [ln.encode() for ln in lines]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        msg = f"cannot write {path}: {e.strerror}"
        raise UsageError(msg) from None
    try:
        # Read, merge and replace as one step: a concurrent build's lines are not lost.
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A repeated cache hit: the bundle holds exactly these lines already. Nothing to
        # merge or rewrite (merged() would keep each line as it is, after parsing it).
        if _same_bytes(path, b"\n".join(new) + b"\n"):
            return
        existing = _lines(path)
        if not existing and legacy is not None:
            dirty = {i[2] for ln in new if (i := _ours(ln, key)) is not None}
            existing = [ln for ln in _legacy(legacy) if (i := _ours(ln, key)) and i[2] in dirty]
        data = b"\n".join(merged(existing, new, key)) + b"\n"
        if not _same_bytes(path, data):  # a repeated cache hit rewrites nothing
            bundle.write_atomic(path, data)
    finally:
        os.close(lock)


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
