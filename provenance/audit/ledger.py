"""The audit ledger: one hash-chained JSON line per `build`, `verify` and `gate` run.

File: `<git toplevel>/.provenance/ledger.jsonl` (override with `$PROVENANCE_LEDGER`).
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

Docs: docs/audit.md.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from provenance.errors import ProvenanceError, UsageError, VerificationError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from provenance.audit.models import CheckRecord, Draft, Entry

_MODELS = ("Actor", "BundleRecord", "CheckRecord", "Draft", "Entry")


def __getattr__(name: str) -> Any:
    # The pydantic models load on first use: appending needs none of them.
    if name in _MODELS:
        from provenance.audit import models as ledger_models  # noqa: PLC0415

        return getattr(ledger_models, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


log = logging.getLogger(__name__)

SCHEMA_VERSION: Literal[1] = 1
GENESIS = "0" * 64  # `prev` of the first entry
LEDGER_DIR = ".provenance"
LEDGER_NAME = "ledger.jsonl"
LEDGER_ENV = "PROVENANCE_LEDGER"  # a path, or "off" to record nothing
MAX_ENTRY_BYTES = 1024 * 1024  # one line; a larger one is refused on write, broken on read
_TAIL_CHUNK = 64 * 1024

Command = Literal["build", "verify", "gate"]
Tier = Literal["local", "ci", "reproduced"]
Result = Literal["passed", "failed", "cached", "reused", "skipped", "error"]
TIER_RANK: dict[str, int] = {"local": 0, "ci": 1, "reproduced": 2}
PASSING: frozenset[str] = frozenset({"passed", "cached", "reused"})
FAILING: frozenset[str] = frozenset({"failed", "error"})


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


def now() -> str:
    t = dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def env_tier(environ: dict[str, str] | None = None) -> Tier:
    """`ci` on a CI runner (CI=true or GITHUB_ACTIONS set), else `local`."""
    env = os.environ if environ is None else environ
    if env.get("CI", "").lower() in {"true", "1"} or env.get("GITHUB_ACTIONS"):
        return "ci"
    return "local"


def highest_tier(checks: Iterable[CheckRecord | Mapping[str, Any]], default: Tier) -> Tier:
    """The highest tier any passing check reached (models or wire dicts alike)."""
    pairs = [
        (c["tier"], c["result"]) if isinstance(c, Mapping) else (c.tier, c.result) for c in checks
    ]
    tiers = [tier for tier, result in pairs if result in PASSING]
    return max(tiers, key=TIER_RANK.__getitem__) if tiers else default


def actor(keyid: str | None = None) -> dict[str, str]:
    """Who ran the command, as the wire form of `Actor`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = f"uid{os.getuid()}"
    who = {"host": socket.gethostname(), "user": user}
    return {**who, "keyid": keyid} if keyid else who


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

    `draft` is a `Draft` model, or its wire form as a dict (what `record` passes, so
    that appending never imports pydantic; readers validate every line either way).
    Example: `append(Path(".provenance/ledger.jsonl"), Draft(time=now(), ...))`.
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


# -- recording from commands --------------------------------------------------------------


def default_path(repo_root: Path) -> Path:
    return repo_root / LEDGER_DIR / LEDGER_NAME


def _ensure_ignored(directory: Path) -> None:
    # Same rule as bundles: the .provenance directory ignores itself, so the ledger never
    # makes the tree dirty or shows up as untracked.
    ignore = directory / ".gitignore"
    if directory.name == LEDGER_DIR and not ignore.exists():
        directory.mkdir(parents=True, exist_ok=True)
        ignore.write_bytes(b"*\n")


def _repo_id(git: Any, top: Path) -> str:
    try:
        return str(git.remote_url() or top)
    except ProvenanceError:  # not a repository (explicit ledger path): the directory
        return str(top)


def bundle_record(path: Path, role: Literal["written", "read"]) -> dict[str, str]:
    """The wire form of a `BundleRecord`."""
    return {
        "path": str(path),
        "role": role,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def record(
    repo_root: Path,
    *,
    command: Command,
    ok: bool,
    commit: str | None,
    checks: Sequence[Mapping[str, Any]],
    bundles: Sequence[tuple[Path, Literal["written", "read"]]] = (),
    keyid: str | None = None,
    duration_ms: int | None = None,
    ledger_path: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Appended | None:
    """Append one entry for a finished command; never raises (a ledger failure is a warning).

    `repo_root` is any directory inside the repository; the ledger goes to
    `<toplevel>/.provenance/ledger.jsonl` unless `ledger_path` or $PROVENANCE_LEDGER say
    otherwise ($PROVENANCE_LEDGER=off records nothing). Example (the build command):

        ledger.record(flake_dir, command="build", ok=not report.failed, commit=report.commit,
                      checks=ledger.build_checks(report), bundles=[(report.bundle_path, "written")],
                      keyid=report.keyid, duration_ms=ms, warn=reporter.warn)
    """
    say = warn or (lambda m: log.warning("%s", m))
    env_path = os.environ.get(LEDGER_ENV, "")
    if env_path.lower() in {"off", "0", "false"}:
        return None
    try:
        from provenance.doors.git import Git  # noqa: PLC0415 - keep the ledger importable alone

        if ledger_path is None and env_path:
            ledger_path = Path(env_path)
        git = Git(repo_root)
        try:
            top = git.toplevel()
        except UsageError:
            if ledger_path is None:
                raise  # no repository and no explicit ledger: nowhere to write
            top = repo_root.resolve()  # e.g. `verify` of a bundle outside any repository
        if ledger_path is None:
            ledger_path = default_path(top)
            _ensure_ignored(ledger_path.parent)
        draft: dict[str, Any] = {
            "time": now(),
            "command": command,
            "ok": ok,
            "actor": actor(keyid),
            "repo": _repo_id(git, top),
            "checks": [dict(c) for c in checks],
            "bundles": [bundle_record(p, role) for p, role in bundles],
            "tier": highest_tier(checks, env_tier()),
        }
        if commit is not None:
            draft["commit"] = commit
        if duration_ms is not None:
            draft["durationMs"] = duration_ms
        done = append(ledger_path, draft)
    except ProvenanceError as e:
        say(f"ledger not updated: {e.diagnostics()}")
        return None
    except (OSError, ValueError) as e:
        say(f"ledger not updated: {e}")
        return None
    if done.repaired_bytes:
        say(
            f"ledger {ledger_path}: dropped a partial last line ({done.repaired_bytes} bytes) "
            "left by an interrupted append"
        )
    return done


def check_record(
    name: str, result: Result, tier: Tier, drv_path: str | None = None
) -> dict[str, str]:
    """The wire form of a `CheckRecord` (what `record` takes)."""
    rec = {"name": name, "result": result, "tier": tier}
    return {**rec, "drvPath": drv_path} if drv_path else rec


def build_checks(report: Any) -> list[dict[str, str]]:
    """Ledger check records from an attest.BuildReport (attested/cached/failed)."""
    tier = env_tier()
    results: dict[str, Result] = {"attested": "passed", "cached": "cached", "failed": "failed"}
    return [
        check_record(c.name, results.get(c.status, "error"), tier, c.drv_path)
        for c in report.checks
    ]


def verify_checks(report: Any) -> list[dict[str, str]]:
    """Ledger check records from a verify.VerifyReport: one per attestation about a check.

    The tier is `reproduced` only when the rebuild level was reached (an independent
    rebuild matched every output); otherwise where the verifier ran.
    """
    tier = env_tier()
    records = [
        check_record(
            a.check,
            "passed" if a.status == "PASSED" else "failed",
            "reproduced" if "reproduced" in a.levels and a.status == "PASSED" else tier,
            a.drv_path,
        )
        for a in report.attestations
        if a.check and a.status != "SKIPPED"
    ]
    records += [check_record(name, "failed", tier) for name in report.missing]
    return records


def gate_checks(report: Any) -> list[dict[str, str]]:
    """Ledger check records from a gate.GateReport: `reused` when a proof lets CI skip it."""
    tier = env_tier()
    return [
        check_record(c.name, "reused" if c.passed else "skipped", tier, c.drv_path)
        for c in report.checks
    ]
