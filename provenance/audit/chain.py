"""The ledger file itself: a hash chain of canonical JSON lines, appended and verified.

File: `<git toplevel>/.provenance/ledger.jsonl` (the place is `ledger`'s business).
Each line is one `Entry` in canonical JSON (see `canonical`); its `prev` field is the hex
SHA-256 of the previous line's bytes (without the newline), and the first entry's
`prev` is 64 zeros. Only `prev` is stored, not an entry's own hash: the hash of line N is
recomputed from its bytes, so a stored self-hash would add nothing an editor could not
also rewrite. The chain head (hash of the last line) is what to pin elsewhere (a CI log,
a PR comment) to make truncation or rewriting of the tail detectable.

Writers (`append`) hold an exclusive `flock` on the ledger while they read the tail and
write one whole line with one `os.write` on an `O_APPEND` descriptor, then `fsync`:
concurrent writers on one machine serialise, and a crash leaves at most one partial
last line. The next writer finds that line (no trailing newline), truncates it away
(complete entries are never touched) and reports how many bytes it dropped.

Appending imports no pydantic (it runs on every `provenance build`); reading validates
each line against `models`, imported only then. What goes into an entry is `ledger`'s.
Docs: docs/audit.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from provenance.errors import ProvenanceError, UsageError, VerificationError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from provenance.audit.models import Draft, Entry

log = logging.getLogger(__name__)

SCHEMA_VERSION: Literal[1] = 1
GENESIS = "0" * 64  # `prev` of the first entry
MAX_ENTRY_BYTES = 1024 * 1024  # one line; a larger one is refused on write, broken on read
_TAIL_CHUNK = 64 * 1024


class LedgerError(ProvenanceError):
    """The ledger cannot be read or appended to (I/O, or a corrupt last entry)."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/floats in our schema.

    For our value types (objects with ASCII keys, strings, integers, booleans, null,
    arrays) this is the RFC 8785 (JCS) serialisation: keys sorted by code point (same as
    UTF-16 order for ASCII keys), minimal escapes (`\\"`, `\\\\`, `\\b\\f\\n\\r\\t`, other
    controls as `\\u00xx`), non-ASCII characters as raw UTF-8.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(line: bytes) -> str:
    """The hash the next entry's `prev` must hold: SHA-256 of the line without newline."""
    return hashlib.sha256(line).hexdigest()


# -- appending ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Appended:
    entry: dict[str, Any]  # the entry as written (wire form)
    line: int  # 1-based line number of the new entry
    repaired_bytes: int  # bytes of a partial last line dropped before appending


def _last_newline(fd: int, end: int) -> int:
    """Offset of the last b"\\n" before `end`, or -1 if there is none."""
    pos = end
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i
        pos = start
    return -1


def _repair_tail(fd: int, path: Path) -> tuple[int, int]:
    """Drop a partial last line (crash mid-append); return (new size, bytes dropped)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size, 0
    keep = _last_newline(fd, size) + 1
    os.ftruncate(fd, keep)
    os.fsync(fd)
    dropped = size - keep
    # Reported to the user by the caller (Appended.repaired_bytes); logged for -v.
    log.info(
        "%s: dropped a partial last line (%d bytes) left by an interrupted append", path, dropped
    )
    return keep, dropped


def _last_entry(fd: int, size: int, path: Path) -> tuple[int, str]:
    """(seq of the next entry, its prev) from the last complete line."""
    if size == 0:
        return 0, GENESIS
    start = _last_newline(fd, size - 1) + 1
    line = os.pread(fd, size - 1 - start, start)
    try:
        seq = json.loads(line)["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError(seq)  # one handler below for every shape of junk
    except (ValueError, KeyError, TypeError, RecursionError):
        msg = f"{path}: the last entry is not a ledger entry; refusing to chain onto it"
        raise LedgerError(msg, f"run `provenance audit verify --ledger {path}`") from None
    return seq + 1, entry_hash(line)


def append(path: Path, draft: Draft | Mapping[str, Any]) -> Appended:
    """Append `draft` as the next entry, under an exclusive lock; return what was written.

    `draft` is a `Draft` model, or its wire form as a dict (what `ledger.record` passes,
    so that appending never imports pydantic; readers validate every line either way).
    Example: `append(Path(".provenance/ledger.jsonl"), Draft(time=ledger.now(), ...))`.
    """
    fields = (
        dict(draft)
        if isinstance(draft, Mapping)
        else draft.model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        msg = f"cannot open the ledger {path}: {e.strerror}"
        raise LedgerError(msg) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size, dropped = _repair_tail(fd, path)
        seq, prev = _last_entry(fd, size, path)
        entry = {**fields, "prev": prev, "seq": seq, "v": SCHEMA_VERSION}
        data = canonical(entry) + b"\n"
        if len(data) > MAX_ENTRY_BYTES:
            msg = f"ledger entry is {len(data)} bytes, over the {MAX_ENTRY_BYTES}-byte limit"
            raise LedgerError(msg)
        # One write of the whole line on O_APPEND: readers never see two entries interleaved.
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, size)  # a short write (disk full): leave no partial line behind
            msg = f"short write to the ledger {path} ({written} of {len(data)} bytes)"
            raise LedgerError(msg)
        os.fsync(fd)
        return Appended(entry, seq + 1, dropped)
    except OSError as e:
        msg = f"cannot append to the ledger {path}: {e.strerror}"
        raise LedgerError(msg) from None
    finally:
        os.close(fd)  # closing releases the lock


# -- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    line: int  # 1-based line of the first entry that cannot be trusted
    reason: str


@dataclass(frozen=True)
class ChainReport:
    path: Path
    entries: int  # complete entries verified (all of them when `broken` is None)
    head: str  # hash of the last verified entry (GENESIS when there is none)
    broken: ChainBreak | None = None
    unverified: int = 0  # complete lines after the break
    partial_tail: int = 0  # bytes of an unterminated last line (an interrupted append)
    items: list[Entry] = field(default_factory=list, repr=False)  # when asked to keep them

    @property
    def ok(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        if self.broken:
            return (
                f"{self.path}: chain broken at line {self.broken.line}: {self.broken.reason} "
                f"({self.entries} entries before it verify)"
            )
        return f"{self.path}: chain valid, {self.entries} entries, head {self.head}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ledger": str(self.path),
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "broken": (
                {"line": self.broken.line, "reason": self.broken.reason} if self.broken else None
            ),
            "unverifiedLines": self.unverified,
            "partialTailBytes": self.partial_tail,
        }


_PREV_MISMATCH = "prev does not match the hash of the line before it"


def _reader_types() -> tuple[type[Entry], type[ValidationError]]:
    """The schema model and pydantic's error type, imported when something reads."""
    from pydantic import ValidationError  # noqa: PLC0415

    from provenance.audit.models import Entry  # noqa: PLC0415

    return Entry, ValidationError


def _check_line(
    raw: bytes, n: int, prev: str, types: tuple[type[Entry], type[ValidationError]]
) -> tuple[Entry | None, str | None, str]:
    """(entry, problem, hash) for line `n` (1-based) given the expected prev."""
    digest = entry_hash(raw)
    if len(raw) > MAX_ENTRY_BYTES:
        return None, f"over the {MAX_ENTRY_BYTES}-byte entry limit", digest
    model, invalid = types
    try:
        # Fast path (pydantic-core parses in Rust): a valid, canonical, chained entry.
        entry = model.model_validate_json(raw)
    except invalid as e:
        return None, _diagnose(raw, n, prev, e), digest
    # seq first: a removed, inserted or reordered line shows as a wrong seq on that line.
    if entry.seq != n - 1:
        return None, _seq_problem(entry.seq, n), digest
    if entry.prev != prev:
        return None, _genesis_or_mismatch(n), digest
    if entry.model_dump_json(by_alias=True, exclude_none=True).encode() != raw and (
        canonical(json.loads(raw)) != raw  # the exact rule, for the rare escaping difference
    ):
        return None, "not in canonical JSON form (edited by hand?)", digest
    return entry, None, digest


def _genesis_or_mismatch(n: int) -> str:
    return "the first entry's prev is not 64 zeros (genesis)" if n == 1 else _PREV_MISMATCH


def _seq_problem(seq: int, n: int) -> str:
    return f"seq is {seq}, expected {n - 1}: a line before it was removed, inserted or moved"


def _diagnose(raw: bytes, n: int, prev: str, error: ValidationError) -> str:
    """Name what is wrong with an invalid line, chain problems first."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return "not valid JSON"
    except RecursionError:
        return "nests too deeply to be a ledger entry"
    if not isinstance(obj, dict):
        return "not a JSON object"
    if isinstance(obj.get("seq"), int) and obj["seq"] != n - 1:
        return _seq_problem(obj["seq"], n)
    if obj.get("prev") != prev:
        return _genesis_or_mismatch(n)
    err = error.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "entry"
    return f"not a valid entry: {where}: {err['msg']}"


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            yield from f
    except FileNotFoundError:
        msg = f"no ledger at {path}"
        raise UsageError(msg, "run `provenance build` first, or pass --ledger PATH") from None
    except IsADirectoryError:
        msg = f"{path} is a directory, not a ledger"
        raise UsageError(msg) from None
    except OSError as e:
        msg = f"cannot read the ledger {path}: {e.strerror}"
        raise LedgerError(msg) from None


def verify_chain(path: Path, *, keep: bool = False) -> ChainReport:
    """Stream the ledger and check every line: JSON, schema, canonical form, seq, prev.

    Never raises for a broken chain (see `ChainReport.broken`); raises UsageError when the
    file is missing. With `keep`, the verified entries are returned in `items`.
    """
    types = _reader_types()
    before, prev, n = GENESIS, GENESIS, 0  # hashes of lines n-1 and n
    items: list[Entry] = []
    broken: ChainBreak | None = None
    partial = unverified = 0
    for raw in _lines(path):
        if not raw.endswith(b"\n"):
            partial = len(raw)  # can only be the last line: an interrupted append
            break
        if broken:
            unverified += 1
            continue
        entry, problem, digest = _check_line(raw[:-1], n + 1, prev, types)
        if problem is None:
            assert entry is not None
            n += 1
            before, prev = prev, digest
            if keep:
                items.append(entry)
        elif problem == _PREV_MISMATCH and n > 0:
            # Line n no longer hashes to what line n+1 recorded (seqs agree, so no line is
            # missing): line n is the first entry we cannot vouch for.
            broken = ChainBreak(
                n,
                f"its hash does not match the prev recorded by line {n + 1}:"
                f" line {n} was changed after it was written"
                f" (or line {n + 1}'s prev was)",
            )
            n -= 1
            prev = before
            if keep:
                items.pop()
            unverified = 1
        else:
            broken = ChainBreak(n + 1, problem)
    return ChainReport(path, n, prev, broken, unverified, partial, items)


def require_chain(path: Path) -> ChainReport:
    """`verify_chain`, raising VerificationError that names the first broken entry."""
    report = verify_chain(path)
    if report.broken:
        raise VerificationError(report.describe(), "restore the ledger from a copy you trust")
    return report
