"""The ledger's schema as pydantic models (strict, extra="forbid"), for reading.

Kept apart from `ledger.py` and `chain.py` so that appending an entry (on every
`provenance build`, including a cache hit an agent waits for) does not import pydantic:
`ledger.record` writes plain dicts in the same canonical form, and every reader (`audit
verify`, summaries, reports) validates lines against these models. The words the
fields use (commands, tiers, results) come from `vocab`, which both sides share.
Fields are declared in sorted wire-name order: see the note on `_Model`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from provenance.audit.vocab import Command, Result, Tier

_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"


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
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0)
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
    bundles: tuple[BundleRecord, ...] = ()  # bundles the command wrote or read
    checks: tuple[CheckRecord, ...] = ()
    command: Command
    commit: str | None = None
    # A build of a work tree with uncommitted changes: it proves nothing about `commit`.
    # Absent (never false) otherwise; entries before this field say nothing either way.
    dirty: bool | None = None
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0)  # whole command
    ok: bool  # did the command succeed (exit 0; for gate: it decided, without an error)
    repo: str  # remote URL of `origin`, or the toplevel path when there is none
    # The toplevel path (absent in older entries): with the host, the same repository
    # whatever `repo` said at the time (a remote added later changes `repo`).
    repo_path: str | None = Field(default=None, alias="repoPath")
    tier: Tier  # the highest tier any passing check reached (else the environment's)
    time: str = Field(pattern=_TIME)  # UTC, ISO 8601 with milliseconds and a Z


class Entry(_Model):
    """One ledger line: a Draft plus its place in the chain (same fields, sorted)."""

    actor: Actor
    bundles: tuple[BundleRecord, ...] = ()
    checks: tuple[CheckRecord, ...] = ()
    command: Command
    commit: str | None = None
    dirty: bool | None = None
    duration_ms: int | None = Field(default=None, alias="durationMs", ge=0)
    ok: bool
    prev: str = Field(pattern=r"^[0-9a-f]{64}$")  # entry_hash of the previous line
    repo: str
    repo_path: str | None = Field(default=None, alias="repoPath")
    seq: int = Field(ge=0)  # 0-based index = line number - 1
    tier: Tier
    time: str = Field(pattern=_TIME)
    v: Literal[1]  # chain.SCHEMA_VERSION

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
