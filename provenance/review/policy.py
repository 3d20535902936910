"""The `[review]` table of provenance.toml: which test deltas make the gate run, which
paths are protected, and whose approval counts.

    [review]
    run-on = ["removed-test", "newly-skipped", "newly-failing", "fewer-tests", "removed-check"]
    protected = ["*.nix", "flake.lock", "provenance.toml", "nix/**", "tests/**"]
    approvals = 1                       # distinct reviewers needed for each delta

    [review.reviewers.carol]            # reviewer keys, as [trust.keys] spells them
    public_key = "-----BEGIN PUBLIC KEY-----\\n...\\n-----END PUBLIC KEY-----\\n"
    expires = 2027-06-30                # optional

Every key is optional; the defaults are the values shown (no reviewers: no approval
counts). `protected` replaces the default list: keep the entries you still want. Paths
are relative to the flake directory: a file, a directory, or a glob where `*` crosses `/`
(definition.matches). Like trust, the table is read from the base (the target branch), or
from `--policy FILE`, never from the change: a change cannot relax its own review.

Reviewer keys are apart from the build keys on purpose: whoever can attest (a developer's
or an agent's machine) must not be able to approve its own weakening. An approval signed
by a key that is also a trusted build key does not count (compare.py says so).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.doors.git import Git
from provenance.errors import UsageError
from provenance.formats.keys import PublicKey, load_public_key
from provenance.policy.trust import (
    POLICY_FILE,
    TrustedKey,
    key_entry,
    read_policy_data,
    write_policy_data,
)

REMOVED_TEST = "removed-test"
NEWLY_SKIPPED = "newly-skipped"
NEWLY_FAILING = "newly-failing"
FEWER_TESTS = "fewer-tests"
REMOVED_CHECK = "removed-check"
KINDS = (REMOVED_TEST, NEWLY_SKIPPED, NEWLY_FAILING, FEWER_TESTS, REMOVED_CHECK)
DEFAULT_PROTECTED = ("*.nix", "flake.lock", POLICY_FILE, "nix/**", "tests/**")


@dataclass(frozen=True)
class ReviewPolicy:
    run_on: frozenset[str] = frozenset(KINDS)
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    reviewers: tuple[TrustedKey, ...] = ()
    approvals: int = 1
    source: str = "defaults (no [review] table)"

    def active_reviewers(self, today: dt.date | None = None) -> list[PublicKey]:
        day = today or dt.datetime.now(dt.UTC).date()
        return [k.key for k in self.reviewers if k.active(day)]

    def reviewer_name(self, keyid: str) -> str | None:
        return next((k.name for k in self.reviewers if k.key.keyid == keyid), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "runOn": sorted(self.run_on),
            "protected": list(self.protected),
            "approvals": self.approvals,
            "reviewers": [k.name for k in self.reviewers],
        }


def from_data(data: dict[str, Any], where: str) -> ReviewPolicy:
    """The [review] table of parsed provenance.toml data; UsageError says what is wrong."""
    table = data.get("review")
    if table is None:
        return ReviewPolicy(source=f"{where} (no [review] table: defaults)")
    if not isinstance(table, dict):
        msg = f"{where}: [review] must be a table"
        raise UsageError(msg)
    unknown = sorted(set(table) - {"run-on", "protected", "approvals", "reviewers"})
    if unknown:
        msg = f"{where}: unknown key(s) in [review]: {', '.join(unknown)}"
        raise UsageError(msg, "known: run-on, protected, approvals, reviewers (docs/review.md)")
    run_on = table.get("run-on", list(KINDS))
    if not isinstance(run_on, list) or any(k not in KINDS for k in run_on):
        msg = f"{where}: review.run-on must be a list of {', '.join(KINDS)}"
        raise UsageError(msg)
    protected = table.get("protected", list(DEFAULT_PROTECTED))
    if not isinstance(protected, list) or not all(_relative(p) for p in protected):
        msg = f"{where}: review.protected must be a list of paths relative to the flake directory"
        raise UsageError(msg, "no absolute paths, no '..'")
    approvals = table.get("approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 1:
        msg = f"{where}: review.approvals must be a positive integer"
        raise UsageError(msg)
    entries = table.get("reviewers", {})
    if not isinstance(entries, dict):
        msg = f"{where}: review.reviewers must be a table of named keys"
        raise UsageError(msg)
    reviewers = tuple(key_entry(where, n, e, "review.reviewers") for n, e in entries.items())
    return ReviewPolicy(frozenset(run_on), tuple(protected), reviewers, approvals, where)


def _relative(p: Any) -> bool:
    return isinstance(p, str) and bool(p) and not p.startswith("/") and ".." not in p.split("/")


def load(path: Path) -> ReviewPolicy:
    """[review] of a policy file given on the command line (`--policy FILE`)."""
    return from_data(read_policy_data(path), str(path))


def from_commit(git: Git, commit: str, subdir: str, label: str) -> ReviewPolicy:
    """[review] of the flake directory's provenance.toml at `commit` (the base); defaults
    when there is none. `label` names the commit in messages (e.g. the base ref)."""
    path = f"{subdir}/{POLICY_FILE}" if subdir else POLICY_FILE
    where = f"{label}:{path}"
    data = git.show_file(commit, path)
    if data is None:
        return ReviewPolicy(source=f"defaults (no {path} on {label})")
    try:
        parsed = tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        msg = f"{where} is not valid TOML: {e}"
        raise UsageError(msg) from None
    except RecursionError:
        msg = f"{where} is nested too deeply to be a policy"
        raise UsageError(msg) from None
    return from_data(parsed, where)


def add_reviewer(
    policy_path: Path, name: str, pub: Path, expires: dt.date | None = None
) -> TrustedKey:
    """Add or replace reviewer NAME in [review.reviewers], keeping the rest of the file."""
    key = load_public_key(pub)
    data = read_policy_data(policy_path) if policy_path.exists() else {}
    review = data.setdefault("review", {})
    reviewers = review.setdefault("reviewers", {}) if isinstance(review, dict) else None
    if not isinstance(reviewers, dict):
        msg = f"{policy_path}: [review] and review.reviewers must be tables; not changing it"
        raise UsageError(msg, "fix the file by hand (see docs/review.md), then try again")
    entry: dict[str, Any] = {"public_key": key.pem().decode(), "keyid": key.keyid}
    if expires:
        entry["expires"] = expires
    reviewers[name] = entry
    write_policy_data(policy_path, data)
    return TrustedKey(name, key, expires)
