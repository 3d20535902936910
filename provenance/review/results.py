"""What trusted notes say a check's tests were: one `TestSet` per test-result statement.

`read` authenticates every note line before looking inside it (DSSE over the payload
bytes, against the build keys and the reviewer keys at once) and keeps:
- test-result statements signed by a build key, by the drvPath they pin
  (`configuration[0]`, docs/test-results.md) and by (attribute, commit);
- the drvPaths of clean provenance statements signed by a build key: a check attested
  with no test-result beside it reported no tests (`build` signs one whenever a check
  left results), which is known, not doubt;
- approval statements signed by a reviewer key (read by approval.py).
Lines that do not verify or do not parse are counted, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import AttestationError, VerificationError
from provenance.formats import dsse
from provenance.formats.claims import load_statement, parse_provenance, test_result_binding
from provenance.formats.keys import PublicKey
from provenance.formats.uris import APPROVAL_V1, SLSA_PROVENANCE_V1, TEST_RESULT_V01

PASSED, SKIPPED, FAILED = "passed", "skipped", "failed"
_RANK = {FAILED: 0, SKIPPED: 1, PASSED: 2}  # worst first


@dataclass(frozen=True)
class TestSet:
    """The tests of one run: ids and outcomes when the report listed them, else counts."""

    __test__ = False  # not a pytest class, whatever its name

    listed: bool
    tests: Mapping[str, str]  # id -> passed | skipped | failed (empty when not listed)
    passed: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    def as_json(self) -> dict[str, Any]:
        return {
            "idsListed": self.listed,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "total": self.total,
        }


NONE_REPORTED = TestSet(True, {}, 0, 0, 0)  # attested, and the check left no test results


def from_statement(stmt: dict[str, Any]) -> TestSet:
    """The TestSet of a verified test-result statement; AttestationError if malformed."""
    pred = stmt.get("predicate")
    config = pred.get("configuration") if isinstance(pred, dict) else None
    if not isinstance(pred, dict) or not isinstance(config, list):
        msg = "test-result statement without predicate.configuration"
        raise AttestationError(msg)
    notes: dict[str, Any] = {}
    for entry in config:
        ann = entry.get("annotations") if isinstance(entry, dict) else None
        if isinstance(ann, dict) and "testIdsListed" in ann:
            notes = ann
    tests: dict[str, str] = {}
    for key, outcome in (
        ("passedTests", PASSED),
        ("warnedTests", SKIPPED),
        ("failedTests", FAILED),
    ):
        ids = pred.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            msg = f"test-result predicate.{key} is not a list of test ids"
            raise AttestationError(msg)
        for i in ids:
            # An id listed twice keeps its worst outcome: in doubt, the weaker run.
            if i not in tests or _RANK[outcome] < _RANK[tests[i]]:
                tests[i] = outcome
    listed = notes.get("testIdsListed", bool(tests)) is True
    counts = [notes.get(k) for k in ("passed", "failed", "skipped")]
    if all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        passed, failed, skipped = (int(c) for c in counts)  # type: ignore[arg-type]
    elif listed:
        outcomes = list(tests.values())
        passed, failed, skipped = (outcomes.count(o) for o in (PASSED, FAILED, SKIPPED))
    else:
        msg = "test-result statement has neither test ids nor counts"
        raise AttestationError(msg)
    return TestSet(listed, tests if listed else {}, passed, failed, skipped)


def best(sets: Iterable[TestSet]) -> TestSet:
    """Several runs of the base as one: every test any run had, at its best outcome."""
    return _combine(list(sets), max, lambda a, b: a if _RANK[a] >= _RANK[b] else b)


def worst(sets: Iterable[TestSet]) -> TestSet:
    """Several runs of the change as one: only tests every run had, at their worst outcome."""
    return _combine(list(sets), min, lambda a, b: a if _RANK[a] <= _RANK[b] else b, common=True)


def _combine(sets: list[TestSet], pick: Any, outcome: Any, *, common: bool = False) -> TestSet:
    if len(sets) == 1:
        return sets[0]
    listed = all(s.listed for s in sets)
    tests: dict[str, str] = {}
    if listed:
        ids = set(sets[0].tests)
        for s in sets[1:]:
            ids = ids & set(s.tests) if common else ids | set(s.tests)
        for i in ids:
            values = [s.tests[i] for s in sets if i in s.tests]
            chosen = values[0]
            for v in values[1:]:
                chosen = outcome(chosen, v)
            tests[i] = chosen
    chosen_set = pick(sets, key=lambda s: (s.total, s.passed))
    if not listed:
        return TestSet(False, {}, chosen_set.passed, chosen_set.failed, chosen_set.skipped)
    outcomes = list(tests.values())
    return TestSet(True, tests, *(outcomes.count(o) for o in (PASSED, FAILED, SKIPPED)))


@dataclass
class Index:
    """What the trusted lines of some notes say, by drvPath."""

    results: dict[str, list[TestSet]] = field(default_factory=dict)  # drvPath -> runs
    by_attribute: dict[tuple[str, str], list[TestSet]] = field(default_factory=dict)
    attested: set[str] = field(default_factory=set)  # drvPaths of clean trusted provenance
    # (note commit, verified statement, reviewer keyids): parsed by approval.parse
    approvals: list[tuple[str, dict[str, Any], frozenset[str]]] = field(default_factory=list)
    unreadable: int = 0  # trusted lines that do not parse

    def runs(self, drv: str) -> list[TestSet]:
        return self.results.get(drv, [])


def read(
    notes: Iterable[tuple[str, bytes]],
    build_keys: list[PublicKey],
    reviewer_keys: list[PublicKey],
) -> Index:
    builders = {k.keyid for k in build_keys}
    reviewers = {k.keyid for k in reviewer_keys}
    keys = list({k.keyid: k for k in [*build_keys, *reviewer_keys]}.values())
    idx = Index()
    seen: set[tuple[str, bytes]] = set()
    for commit, body in notes:
        for raw in body.split(b"\n"):
            # A note read through both windows counts once. Per commit, not per line: a
            # line copied onto another commit's note must not hide the one on its own.
            if not raw.strip() or (commit, raw) in seen:
                continue
            seen.add((commit, raw))
            try:
                verified = dsse.verify(dsse.Envelope.from_json(raw), keys)
                stmt = load_statement(verified.payload)
            except (AttestationError, VerificationError):
                continue  # not ours to judge here: the gate's evidence counts these
            try:
                _keep(idx, commit, stmt, verified.keyids & builders, verified.keyids & reviewers)
            except AttestationError:
                idx.unreadable += 1
    return idx


def _keep(
    idx: Index,
    commit: str,
    stmt: dict[str, Any],
    by_builder: frozenset[str],
    by_reviewer: frozenset[str],
) -> None:
    ptype = stmt.get("predicateType")
    if ptype == TEST_RESULT_V01 and by_builder:
        bound = test_result_binding(stmt)
        if bound is None:
            msg = "test-result statement does not name a derivation"
            raise AttestationError(msg)
        drv, made_at = bound
        runs = from_statement(stmt)
        idx.results.setdefault(drv, []).append(runs)
        attribute = _attribute(stmt)
        if attribute and made_at:
            idx.by_attribute.setdefault((attribute, made_at), []).append(runs)
    elif ptype == SLSA_PROVENANCE_V1 and by_builder:
        claim = parse_provenance(stmt)
        if not claim.dirty:
            idx.attested.add(claim.drv_path)
    elif ptype == APPROVAL_V1 and by_reviewer:
        idx.approvals.append((commit, stmt, by_reviewer))


def _attribute(stmt: dict[str, Any]) -> str | None:
    for entry in stmt["predicate"]["configuration"]:
        ann = entry.get("annotations") if isinstance(entry, dict) else None
        if isinstance(ann, dict) and ann.get("kind") == "derivation":
            value = ann.get("attribute")
            return value if isinstance(value, str) else None
    return None
