"""The cache of `provenance build`: the lines in which this key already attested a check.

A note on the commit, or on one of its last `notes.DEFAULT_SEARCH_DEPTH` ancestors with
the same definition of the checks (definition.py), that attests the same drvPath with the
same key is a cache hit: nothing is built. Apart from the build steps because it only
reads git notes and verifies our own signatures: no nix call, no pool, no pydantic, so a
repeated `provenance build` stays a few git calls. It also finds this commit's lines that
`--force` replaces and that gate and verify would not believe (`stale`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.attest.report import CheckResult
from provenance.doors.git import Git
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH, history_notes
from provenance.errors import AttestationError, VerificationError
from provenance.formats import dsse
from provenance.formats.claims import (
    load_statement,
    log_sha256,
    parse_provenance,
    test_result_binding,
    test_result_counts,
)
from provenance.formats.keys import Signer
from provenance.policy.definition import Definitions
from provenance.policy.environment import EnvironmentPolicy, recorded_problem


@dataclass
class OwnLines:
    """This key's statements already in the notes, per check name, newest commit first."""

    provenance: dict[str, list[tuple[str, CheckResult]]] = field(default_factory=dict)
    test_results: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    # What each test-result line signs, for `build --json` on a cache hit: line -> counts.
    test_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    cosigned: set[str] = field(default_factory=set)  # lines another key signed too
    # Ancestors' lines for the same drvPath, not reused because what defines the checks
    # changed since: check name -> (that commit, the changed paths).
    redefined: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # This commit's lines that gate and verify would not believe (an older tool's, without
    # the recorded settings): never a cache hit, and replaced when the check is re-attested.
    stale: dict[str, list[str]] = field(default_factory=dict)

    def companions(self, name: str, commit: str | None) -> list[str]:
        """The test-result lines that go with the provenance line made on `commit`."""
        return [ln for ln, c in self.test_results.get(name, []) if c == commit]

    def on_commit(self, name: str, commit: str) -> list[str]:
        """This key's own lines for the check on `commit`, which --force may replace.

        A line someone else co-signed is theirs too, so it is never dropped.
        """
        prov = [ln for ln, r in self.provenance.get(name, []) if r.via is None]
        prov += self.stale.get(name, [])
        return [ln for ln in prov + self.companions(name, commit) if ln not in self.cosigned]


def cached(
    git: Git,
    commit: str,
    drvs: dict[str, str],
    signer: Signer,
    depth: int = DEFAULT_SEARCH_DEPTH,
    *,
    ancestors: bool = True,
    definitions: Definitions | None = None,
) -> OwnLines:
    """Lines in which this key already attested a check's drvPath.

    On this commit or, since the drvPath pins every input, on one of its last `depth`
    commits (a README-only change keeps the drvPaths): the same bound as `gate`, and as
    there only when nothing that defines the checks differs (`definitions`). The
    first provenance line per check (this commit's before an ancestor's) is a cache hit,
    and its test-result companion rides along into the bundle. With --force
    (`ancestors=False`) this commit's lines for the check are superseded by the new
    statements and dropped from its note; other keys' and other checks' lines are kept.
    """
    own = OwnLines()
    wanted = {drv: name for name, drv in drvs.items()}
    seen: set[str] = set()
    # This commit's note first: one git call, and on a repeated cache hit the only one.
    _scan_note(own, git.note(commit) or b"", {commit}, commit, wanted, signer, seen)
    if not ancestors or set(own.provenance) >= set(drvs):
        return own
    window, notes = history_notes(git, commit, depth)
    for _, note in notes:  # newest commit first
        _scan_note(own, note, set(window), commit, wanted, signer, seen)
    if definitions is not None:
        _keep_same_definition(own, definitions)
    return own


def _keep_same_definition(own: OwnLines, definitions: Definitions) -> None:
    """Drop ancestors' hits made for another definition of the checks (definition.py)."""
    for name, found in list(own.provenance.items()):
        kept: list[tuple[str, CheckResult]] = []
        dropped: list[str] = []
        for line, result in found:
            if result.via is None or definitions.same_as(result.via):
                kept.append((line, result))
            else:
                dropped.append(result.via)
        if dropped and not kept:
            own.redefined[name] = (dropped[0], definitions.changes_since(dropped[0]))
        if kept:
            own.provenance[name] = kept
        else:
            del own.provenance[name]


def _scan_note(
    own: OwnLines,
    note: bytes,
    in_window: set[str],
    commit: str,
    wanted: dict[str, str],
    signer: Signer,
    seen: set[str],
) -> None:
    # Lines are split on b"\n" only, as everywhere notes are read (U+2028 in a JSON
    # string is not a line break); a line that is not UTF-8 cannot be one of ours.
    for line in (raw.decode(errors="replace") for raw in note.split(b"\n")):
        # keyid is only a hint, but a line without ours cannot count as ours here, and
        # skipping it saves parsing other signers' (large) statements.
        if signer.keyid not in line or line in seen:
            continue
        try:
            env = dsse.Envelope.from_json(line)
            stmt = load_statement(dsse.verify(env, [signer.public]).payload)
            if len(env.signatures) > 1:
                own.cosigned.add(line)
            if (bound := test_result_binding(stmt)) is not None:
                name = wanted.get(bound[0])
                if name is not None:
                    seen.add(line)
                    own.test_results.setdefault(name, []).append((line, bound[1]))
                    if (counts := test_result_counts(stmt)) is not None:
                        own.test_counts[line] = counts
                continue
            claim = parse_provenance(stmt)
        except (AttestationError, VerificationError):
            continue  # other keys' lines, other predicates, or junk: not ours to judge
        name = wanted.get(claim.drv_path)
        if name is None or claim.dirty or claim.commit not in in_window:
            continue
        if recorded_problem(claim.internal, _ANY_SANDBOX_PATHS) is not None:
            if claim.commit == commit:
                own.stale.setdefault(name, []).append(line)
            continue  # gate and verify would not believe it: build again
        seen.add(line)
        outputs = {
            claim.output_names[p]: {"path": p, "sha256": d} for p, d in claim.subjects.items()
        }
        via = None if claim.commit == commit else claim.commit
        result = CheckResult(
            name,
            claim.drv_path,
            "cached",
            outputs,
            claim.output_check,
            log_sha256=log_sha256(stmt),  # as signed in the reused statement
            via=via,
        )
        own.provenance.setdefault(name, []).append((line, result))


# Sandbox paths are the policy's to allow (gate, verify); every other recorded setting must
# hold for a line to count as a cache hit.
_ANY_SANDBOX_PATHS = EnvironmentPolicy(allowed_sandbox_paths=None)
