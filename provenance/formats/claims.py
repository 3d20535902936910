"""Read the claims out of a *verified* statement payload.

Only called on payload bytes whose signature already checked. Plain `json` on purpose:
this is on the cache-hit path, which must stay cheap, and any shape we do not
recognise is an error, never a silent default.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import AttestationError
from provenance.formats.uris import SLSA_PROVENANCE_V1, STATEMENT_TYPE, TEST_RESULT_V01

_STORE_PREFIX = "/nix/store/"
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class ProvenanceClaim:
    check: str
    attribute: str
    system: str
    drv_path: str
    flake: str
    commit: str
    dirty: bool
    subjects: dict[str, str]  # store path -> hex nar sha256
    output_names: dict[str, str]  # store path -> output name (annotations.nixOutput)
    output_check: str
    trust_tier: str  # what the statement says; policy/tier.py decides what it counts as
    builder_id: str = ""  # runDetails.builder.id
    # internalParameters as signed: the environment it records (nixenv.recorded_problem)
    internal: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            msg = f"statement lacks {'.'.join(path)}"
            raise AttestationError(msg)
        obj = obj[key]
    return obj


def _str(obj: Any, *path: str) -> str:
    value = _get(obj, *path)
    if not isinstance(value, str):
        msg = f"statement field {'.'.join(path)} is not a string"
        raise AttestationError(msg)
    return value


def _valid_store_path(name: str) -> bool:
    # Subject names are store paths: no traversal, no odd unicode, one path component.
    if not name.startswith(_STORE_PREFIX):
        return False
    base = name[len(_STORE_PREFIX) :]
    return (
        bool(base)
        and "/" not in base
        and base not in (".", "..")
        and base.isascii()
        and unicodedata.normalize("NFC", base) == base
        and all(c.isalnum() or c in "+-._?=" for c in base)
    )


def load_statement(payload: bytes) -> dict[str, Any]:
    try:
        stmt = json.loads(payload)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a number over 4300 digits
        msg = "signed payload is not JSON"
        raise AttestationError(msg) from None
    except RecursionError:  # a signer may sign garbage too: it must not crash the reader
        msg = "signed payload nests too deeply to be read"
        raise AttestationError(msg) from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        msg = "signed payload is not an in-toto Statement v1"
        raise AttestationError(msg)
    # "\ud800" decodes to a lone surrogate, which no UTF-8 output (a summary we sign, a
    # report) can hold. Checked only when such an escape appears: this path must stay cheap.
    if _SURROGATE.search(payload):
        try:
            json.dumps(stmt, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            msg = "signed payload holds a lone UTF-16 surrogate: it is not UTF-8 text"
            raise AttestationError(msg) from None
    return stmt


def test_result_outcome(stmt: dict[str, Any]) -> str | None:
    """PASSED / WARNED / FAILED of a test-result statement, or None if it has none."""
    predicate = stmt.get("predicate")
    result = predicate.get("result") if isinstance(predicate, dict) else None
    return result if result in ("PASSED", "WARNED", "FAILED") else None


def parse_provenance(stmt: dict[str, Any]) -> ProvenanceClaim:
    if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
        msg = f"predicateType is {stmt.get('predicateType')!r}, expected {SLSA_PROVENANCE_V1}"
        raise AttestationError(msg)
    ext = _get(stmt, "predicate", "buildDefinition", "externalParameters")
    internal = _get(stmt, "predicate", "buildDefinition", "internalParameters")
    subjects: dict[str, str] = {}
    output_names: dict[str, str] = {}
    raw_subjects = stmt.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        msg = "statement has no subjects"
        raise AttestationError(msg)
    for s in raw_subjects:
        name = _str(s, "name")
        digest = _str(s, "digest", "sha256")
        if not _valid_store_path(name):
            msg = f"subject name {name!r} is not a plain Nix store path"
            raise AttestationError(msg)
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            msg = f"subject {name} has a malformed sha256 digest"
            raise AttestationError(msg)
        if name in subjects:
            msg = f"subject {name} is listed twice"
            raise AttestationError(msg)
        subjects[name] = digest
        notes = s.get("annotations")
        out = notes.get("nixOutput") if isinstance(notes, dict) else None
        output_names[name] = out if isinstance(out, str) else "out"
    drv = _str(ext, "drvPath")
    if not _valid_store_path(drv) or not drv.endswith(".drv"):
        msg = f"drvPath {drv!r} is not a store derivation path"
        raise AttestationError(msg)
    dirty = _get(ext, "source", "dirty")
    return ProvenanceClaim(
        check=_str(ext, "check"),
        attribute=_str(ext, "attribute"),
        system=_str(ext, "system"),
        drv_path=drv,
        flake=_str(ext, "flake"),
        commit=_str(ext, "source", "gitCommit"),
        dirty=dirty is not False,
        subjects=subjects,
        output_names=output_names,
        output_check=_str(internal, "outputCheck"),
        trust_tier=_str(internal, "trustTier"),
        builder_id=_str(stmt, "predicate", "runDetails", "builder", "id"),
        internal=internal if isinstance(internal, dict) else {},
    )


def test_result_binding(stmt: dict[str, Any]) -> tuple[str, str | None] | None:
    """(drvPath, gitCommit) a test-result statement is about, or None if not one of ours.

    Our test-result statements pin the check derivation and the source in
    `predicate.configuration` (see docs/test-results.md).
    """
    if stmt.get("predicateType") != TEST_RESULT_V01:
        return None
    predicate = stmt.get("predicate")
    config = predicate.get("configuration") if isinstance(predicate, dict) else None
    if not isinstance(config, list):
        return None
    drv = commit = None
    for entry in config:
        if not isinstance(entry, dict):
            continue
        notes = entry.get("annotations")
        if isinstance(notes, dict) and notes.get("kind") == "derivation":
            drv = entry.get("name")
        elif entry.get("name") == "source" and isinstance(entry.get("digest"), dict):
            commit = entry["digest"].get("gitCommit")
    if not isinstance(drv, str):
        return None
    return drv, commit if isinstance(commit, str) else None


def log_sha256(stmt: dict[str, Any]) -> str | None:
    """The build log's SHA-256 a provenance statement records (byproduct `build.log`)."""
    predicate = stmt.get("predicate")
    run = predicate.get("runDetails") if isinstance(predicate, dict) else None
    byproducts = run.get("byproducts") if isinstance(run, dict) else None
    for b in byproducts if isinstance(byproducts, list) else []:
        if isinstance(b, dict) and b.get("name") == "build.log":
            digest = b.get("digest")
            value = digest.get("sha256") if isinstance(digest, dict) else None
            return value if isinstance(value, str) else None
    return None


def test_result_counts(stmt: dict[str, Any]) -> dict[str, Any] | None:
    """The counts our test-result statement signs, shaped as `build --json` shows `tests`
    (result, format, passed, failed, skipped, source); None when it records none."""
    predicate = stmt.get("predicate")
    config = predicate.get("configuration") if isinstance(predicate, dict) else None
    for entry in config if isinstance(config, list) else []:
        notes = entry.get("annotations") if isinstance(entry, dict) else None
        if isinstance(notes, dict) and "format" in notes and "passed" in notes:
            return {
                "result": test_result_outcome(stmt),
                "format": notes.get("format"),
                "passed": notes.get("passed"),
                "failed": notes.get("failed"),
                "skipped": notes.get("skipped"),
                "source": entry.get("name"),
            }
    return None
