"""How a check's tests changed against the base: one `Delta` per weakening.

The drvPath proves that the tests that ran are the tests of the commit; it does not prove
that the commit kept them. So each check's tests on the change are compared with the
base's (compare.py finds both):

- `removed-test`: a test the base ran is not among the change's tests;
- `newly-skipped`: a test that passed on the base is skipped on the change;
- `newly-failing`: a test that passed or was skipped on the base fails on the change;
- `fewer-tests`: the change runs fewer tests in total (the only sign of a removal when a
  report lists counts, not ids; then newly-skipped and newly-failing compare counts too);
- `removed-check`: a check the base has is gone from the change.

A delta is a value: the approval of one (approval.py) names exactly it, so approving the
removal of `test_a` says nothing about removing `test_b`, and approving "3 tests -> 2"
nothing about "3 -> 1".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provenance.errors import AttestationError
from provenance.review.policy import (
    FEWER_TESTS,
    KINDS,
    NEWLY_FAILING,
    NEWLY_SKIPPED,
    REMOVED_CHECK,
    REMOVED_TEST,
)
from provenance.review.results import FAILED, SKIPPED, TestSet


@dataclass(frozen=True, order=True)
class Delta:
    check: str
    kind: str
    test: str | None = None  # the test id, when the reports listed ids
    before: int | None = None  # counts, for fewer-tests and counts-only comparisons
    after: int | None = None

    def key(self) -> tuple[str, str, str, int, int]:
        """The identity an approval must name (None spelled so tuples compare)."""
        return (
            self.check,
            self.kind,
            self.test if self.test is not None else "",
            -1 if self.before is None else self.before,
            -1 if self.after is None else self.after,
        )

    def describe(self) -> str:
        counts = f" ({self.before} -> {self.after})" if self.before is not None else ""
        what = {
            REMOVED_TEST: "test removed",
            NEWLY_SKIPPED: "newly skipped",
            NEWLY_FAILING: "newly failing",
            FEWER_TESTS: "fewer tests",
            REMOVED_CHECK: "check removed",
        }[self.kind]
        test = f": {self.test}" if self.test is not None else ""
        return f"{self.check}: {what}{test}{counts}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "kind": self.kind}
        if self.test is not None:
            out["test"] = self.test
        if self.before is not None:
            out["before"] = self.before
            out["after"] = self.after
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Delta:
        """Strict: an approval that lists something we cannot read approves nothing."""
        if not isinstance(obj, dict) or set(obj) - {"check", "kind", "test", "before", "after"}:
            msg = "an approved delta is not an object of check, kind, test, before, after"
            raise AttestationError(msg)
        check, kind, test = obj.get("check"), obj.get("kind"), obj.get("test")
        before, after = obj.get("before"), obj.get("after")
        if not isinstance(check, str) or kind not in KINDS:
            msg = "an approved delta lacks a check name or a known kind"
            raise AttestationError(msg)
        if test is not None and not isinstance(test, str):
            msg = "an approved delta's test is not a string"
            raise AttestationError(msg)
        for n in (before, after):
            if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
                msg = "an approved delta's counts are not integers"
                raise AttestationError(msg)
        if (before is None) != (after is None):
            msg = "an approved delta has one count without the other"
            raise AttestationError(msg)
        return cls(check, kind, test, before, after)


def compare_tests(check: str, base: TestSet, change: TestSet) -> list[Delta]:
    """The weakenings from `base` to `change`, sorted; [] when the change kept every test."""
    out: list[Delta] = []
    if base.listed and change.listed:
        for test, was in sorted(base.tests.items()):
            now = change.tests.get(test)
            if now is None:
                out.append(Delta(check, REMOVED_TEST, test))
            elif now == SKIPPED and was != SKIPPED:
                out.append(Delta(check, NEWLY_SKIPPED, test))
            elif now == FAILED and was != FAILED:
                out.append(Delta(check, NEWLY_FAILING, test))
    else:
        # Counts only on one side: nothing names the tests, so the counts must not drop.
        if change.skipped > base.skipped:
            out.append(Delta(check, NEWLY_SKIPPED, None, base.skipped, change.skipped))
        if change.failed > base.failed:
            out.append(Delta(check, NEWLY_FAILING, None, base.failed, change.failed))
    if change.total < base.total:
        out.append(Delta(check, FEWER_TESTS, None, base.total, change.total))
    return out


def removed_check(check: str) -> Delta:
    return Delta(check, REMOVED_CHECK)
