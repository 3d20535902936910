"""The audit ledger: one hash-chained JSON line per `build`, `verify` and `gate` run.

This module holds what each run records: who ran it (`actor`), where (`env_tier`), which
checks with which result (`check_record`, `build_checks`, `verify_checks`,
`gate_checks`), which bundles (`bundle_record`), and `record`, which puts that together
and appends it to `<git toplevel>/.provenance/ledger.jsonl` (override with
`$PROVENANCE_LEDGER`). The hash-chained file itself (canonical JSON, `append`, tail
repair, `verify_chain`) is `chain`; the words an entry uses are `vocab`; the schema
readers validate against is `models`. This module re-exports all of them, so callers
need only `from provenance.audit import ledger`.

Docs: docs/audit.md.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from provenance.audit.chain import (
    GENESIS,
    MAX_ENTRY_BYTES,
    SCHEMA_VERSION,
    Appended,
    ChainBreak,
    ChainReport,
    LedgerError,
    append,
    canonical,
    entry_hash,
    require_chain,
    verify_chain,
)
from provenance.audit.vocab import FAILING, PASSING, TIER_RANK, Command, Result, Tier
from provenance.errors import ProvenanceError, UsageError

if TYPE_CHECKING:
    from provenance.audit.models import Actor, BundleRecord, CheckRecord, Draft, Entry

__all__ = [
    "FAILING",
    "GENESIS",
    "LEDGER_DIR",
    "LEDGER_ENV",
    "LEDGER_NAME",
    "MAX_ENTRY_BYTES",
    "PASSING",
    "SCHEMA_VERSION",
    "TIER_RANK",
    "Actor",
    "Appended",
    "BundleRecord",
    "ChainBreak",
    "ChainReport",
    "CheckRecord",
    "Command",
    "Draft",
    "Entry",
    "LedgerError",
    "Result",
    "Tier",
    "actor",
    "append",
    "branch",
    "build_checks",
    "bundle_record",
    "canonical",
    "check_record",
    "default_path",
    "entry_hash",
    "env_tier",
    "gate_checks",
    "highest_tier",
    "now",
    "record",
    "require_chain",
    "verify_chain",
    "verify_checks",
]

_MODELS = ("Actor", "BundleRecord", "CheckRecord", "Draft", "Entry")


def __getattr__(name: str) -> Any:
    # The pydantic models load on first use: appending needs none of them.
    if name in _MODELS:
        from provenance.audit import models as ledger_models  # noqa: PLC0415

        return getattr(ledger_models, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


log = logging.getLogger(__name__)

LEDGER_DIR = ".provenance"
LEDGER_NAME = "ledger.jsonl"
LEDGER_ENV = "PROVENANCE_LEDGER"  # a path, or "off" to record nothing


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


# Where CI names the branch a run is about: a pull request's source branch first (GitHub
# checks out a merge commit whose HEAD is detached), then the pushed branch.
_BRANCH_VARS = (
    "GITHUB_HEAD_REF",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "GITHUB_REF_NAME",
    "CI_COMMIT_BRANCH",
)


def branch(git: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """The branch the run is about: the one CI names, else the one HEAD is on, else None."""
    env = os.environ if environ is None else environ
    for var in _BRANCH_VARS:
        value = env.get(var, "").strip()
        if value:
            return value
    try:
        return git.current_branch()  # type: ignore[no-any-return]
    except ProvenanceError:
        return None


def actor(keyid: str | None = None) -> dict[str, str]:
    """Who ran the command, as the wire form of `Actor`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = f"uid{os.getuid()}"
    who = {"host": socket.gethostname(), "user": user}
    return {**who, "keyid": keyid} if keyid else who


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
    dirty: bool = False,
) -> Appended | None:
    """Append one entry for a finished command; never raises (a ledger failure is a warning).

    `repo_root` is any directory inside the repository; the ledger goes to
    `<toplevel>/.provenance/ledger.jsonl` unless `ledger_path` or $PROVENANCE_LEDGER say
    otherwise ($PROVENANCE_LEDGER=off records nothing). `keyid`: the key that signed
    what the run wrote (build's statements, verify's summary). `dirty`: a build of
    uncommitted changes, which `audit check` never counts. Example (the build command):

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
            "repoPath": str(top),
            "checks": [dict(c) for c in checks],
            "bundles": [bundle_record(p, role) for p, role in bundles],
            "tier": highest_tier(checks, env_tier()),
        }
        if commit is not None:
            draft["commit"] = commit
        on = branch(git)
        if on:
            draft["branch"] = on
        if dirty:
            draft["dirty"] = True
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
    rebuild matched every output); otherwise where the verifier ran. A check verify
    could not prove without any attestation of it failing (none signed by a trusted key,
    too few signers) is `unverified`, not `failed`: a wrong `--trusted-key` says nothing
    about the check. An attestation that passed for a check that did not is left out.
    """
    tier = env_tier()
    missing = set(report.missing)
    records = [
        check_record(
            a.check,
            "passed" if a.status == "PASSED" else "failed",
            "reproduced" if "reproduced" in a.levels and a.status == "PASSED" else tier,
            a.drv_path,
        )
        for a in report.attestations
        if a.check and a.status != "SKIPPED" and not (a.status == "PASSED" and a.check in missing)
    ]
    named = {r["name"] for r in records}
    records += [check_record(n, "unverified", tier) for n in report.missing if n not in named]
    return records


def gate_checks(report: Any) -> list[dict[str, str]]:
    """Ledger check records from a gate.GateReport: `reused` when a proof lets CI skip it.

    A reused proof's tier is the one its statement claims (`trustTier`: `local` for every
    `provenance build`), not the gate's: CI reusing a laptop's attestation proved nothing
    on CI. A check the gate could not prove (`skipped`: CI runs it) has the gate's tier.
    """
    tier = env_tier()
    return [
        check_record(
            c.name,
            "reused" if c.passed else "skipped",
            _claimed_tier(c.trust_tiers) if c.passed else tier,
            c.drv_path,
        )
        for c in report.checks
    ]


def _claimed_tier(claimed: Sequence[str]) -> Tier:
    # The weakest counted statement decides; trustTier is free text, so only `ci` is ci.
    return "ci" if claimed and all(t == "ci" for t in claimed) else "local"
