"""The ledger's schema as pydantic models (strict, extra="forbid"), for reading.

Kept apart from `ledger.py` and `chain.py` so that appending an entry (on every
`provenance build`, including a cache hit an agent waits for) does not import pydantic:
`ledger.record` writes plain dicts in the same canonical form, and every reader (`audit
verify`, summaries, reports) validates lines against these models. The words the
fields use (commands, tiers, results) come from `vocab`, which both sides share.
Fields are declared in sorted wire-name order: see the note on `_Model`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from provenance.audit.vocab import Command, Result, Tier

# [0-9], not \d: to pydantic's (Rust) regex \d is any Unicode digit, which no reader parses.
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
# JSON's exact-integer limit: a duration past it is no duration, and the reports' float
# arithmetic on it overflows.
_MAX_MS = 2**53


def _real_time(value: str) -> str:
    """The shape is not enough: `2026-13-99T99:99:99Z` is no time, and the summaries and
    the HTML report compute with every entry's time (fromisoformat, timestamps, axes)."""
    year = dt.datetime.fromisoformat(value).year  # ValueError: pydantic reports it
    if not 1970 <= year < 9000:
        msg = f"year {year} is outside 1970..8999"
        raise ValueError(msg)
    return value


Time = Annotated[str, Field(pattern=_TIME), AfterValidator(_real_time)]


class _Model(BaseModel):
    # Our own schema: unknown fields are an error, so a reader never silently drops data;
    # strict, so "5.0" or "true" never pass for an int or a bool.
    # NOTE: fields are declared in sorted wire-name order. Then pydantic's compact
    # `model_dump_json` of a valid entry is byte-identical to `canonical`, which lets
    # `verify_chain` confirm canonical form without a second, slower JSON round trip.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class Actor(_Model):
    host: str
    keyid: str | None = None  # the signer's keyid (hex SHA-256 of its SPKI DER)
    user: str


class CheckRecord(_Model):
    drv_path: str | None = Field(default=None, alias="drvPath")
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0, le=_MAX_MS)
    name: str
    result: Result
    tier: Tier


class BundleRecord(_Model):
    path: str
    role: Literal["written", "read"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Draft(_Model):
    """Everything an entry says about a run; `append` adds `v`, `seq` and `prev`."""

    actor: Actor
    branch: str | None = None  # the branch the command ran on (CI's, else HEAD's)
    bundles: tuple[BundleRecord, ...] = ()  # bundles the command wrote or read
    checks: tuple[CheckRecord, ...] = ()
    command: Command
    commit: str | None = None
    # A build of a work tree with uncommitted changes: it proves nothing about `commit`.
    # Absent (never false) otherwise; entries before this field say nothing either way.
    dirty: bool | None = None
    # the whole command's
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0, le=_MAX_MS)
    ok: bool  # did the command succeed (exit 0; for gate: it decided, without an error)
    repo: str  # remote URL of `origin`, or the toplevel path when there is none
    # The toplevel path (absent in older entries): with the host, the same repository
    # whatever `repo` said at the time (a remote added later changes `repo`).
    repo_path: str | None = Field(default=None, alias="repoPath")
    tier: Tier  # the highest tier any passing check reached (else the environment's)
    time: Time  # UTC, ISO 8601 with milliseconds and a Z


class Entry(_Model):
    """One ledger line: a Draft plus its place in the chain (same fields, sorted)."""

    actor: Actor
    branch: str | None = None
    bundles: tuple[BundleRecord, ...] = ()
    checks: tuple[CheckRecord, ...] = ()
    command: Command
    commit: str | None = None
    dirty: bool | None = None
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0, le=_MAX_MS)
    ok: bool
    prev: str = Field(pattern=r"^[0-9a-f]{64}$")  # entry_hash of the previous line
    repo: str
    repo_path: str | None = Field(default=None, alias="repoPath")
    seq: int = Field(ge=0)  # 0-based index = line number - 1
    tier: Tier
    time: Time
    v: Literal[1]  # chain.SCHEMA_VERSION

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
