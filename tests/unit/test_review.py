"""The rules of --base without nix: which deltas a comparison finds, how test-result
statements read back, and which approvals count (real keys, real signatures)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from provenance.attest import testreports
from provenance.attest import testresults as tr
from provenance.errors import AttestationError, UsageError
from provenance.formats import dsse, keys
from provenance.formats.intoto import ResourceDescriptor
from provenance.policy.trust import TrustedKey, TrustPolicy
from provenance.review import approval, compare, results
from provenance.review.compare import Base, Review
from provenance.review.deltas import Delta, compare_tests
from provenance.review.policy import ReviewPolicy, from_data
from provenance.review.protected import PathChange

A, B, C = "a" * 40, "b" * 40, "c" * 40
BLOB = "100644 " + "1" * 40
BLOB2 = "100644 " + "2" * 40


def _set(**tests: str) -> results.TestSet:
    return results.TestSet(
        True, tests, *(list(tests.values()).count(o) for o in ("passed", "failed", "skipped"))
    )


def test_deltas_name_each_weakened_test() -> None:
    base = _set(t_add="passed", t_mul="passed", t_sub="passed", t_div="skipped")
    change = _set(t_add="passed", t_mul="skipped", t_sub="failed", t_new="passed")
    assert compare_tests("suite", base, change) == [
        Delta("suite", "removed-test", "t_div"),
        Delta("suite", "newly-skipped", "t_mul"),
        Delta("suite", "newly-failing", "t_sub"),
    ]
    # Renaming keeps the count but still removes a test; adding tests is no delta.
    assert compare_tests("s", _set(a="passed"), _set(b="passed")) == [
        Delta("s", "removed-test", "a")
    ]
    assert compare_tests("s", _set(a="passed"), _set(a="passed", b="skipped")) == []


def test_counts_only_reports_compare_counts() -> None:
    base = results.TestSet(False, {}, 10, 0, 1)
    assert compare_tests("det", base, results.TestSet(False, {}, 8, 0, 3)) == [
        Delta("det", "newly-skipped", None, 1, 3)
    ]
    assert compare_tests("det", base, results.TestSet(True, {"x": "passed"}, 1, 0, 0)) == [
        Delta("det", "fewer-tests", None, 11, 1)
    ]
    # A check that stops reporting tests altogether removed all of them.
    assert compare_tests("det", _set(a="passed"), results.NONE_REPORTED) == [
        Delta("det", "removed-test", "a"),
        Delta("det", "fewer-tests", None, 1, 0),
    ]


def _test_result_stmt(
    cases: list[testreports.TestCase], drv: str = "/nix/store/" + "d" * 32 + "-x.drv"
) -> dict[str, Any]:
    res = testreports.from_cases("tap", cases, "/nix/store/x/results.tap", "0" * 64)
    subj = [ResourceDescriptor(name="/nix/store/" + "e" * 32 + "-x", digest={"sha256": "f" * 64})]
    drv_rd = tr.drv_descriptor(drv, None, "suite", "checks.x86_64-linux.suite")
    src = ResourceDescriptor(name="source", digest={"gitCommit": A})
    return json.loads(tr.statement(res, subj, drv_rd, src).dump_bytes())  # type: ignore[no-any-return]


def test_a_signed_test_result_reads_back_as_the_tests_it_lists() -> None:
    stmt = _test_result_stmt(
        [
            testreports.TestCase("b", "skipped"),
            testreports.TestCase("a", "passed"),
            testreports.TestCase("c", "failed"),
        ]
    )
    got = results.from_statement(stmt)
    assert got.listed and dict(got.tests) == {"a": "passed", "b": "skipped", "c": "failed"}
    assert (got.passed, got.failed, got.skipped) == (1, 1, 1)
    stmt["predicate"]["passedTests"] = "a"  # not a list: unreadable, never guessed
    with pytest.raises(AttestationError):
        results.from_statement(stmt)


def test_several_runs_combine_towards_doubt() -> None:
    one, two = _set(a="passed", b="passed"), _set(a="skipped")
    assert dict(results.best([one, two]).tests) == {"a": "passed", "b": "passed"}  # the base
    assert dict(results.worst([one, two]).tests) == {"a": "skipped"}  # the change


def _key(tmp: Path, name: str) -> keys.Signer:
    return keys.load_signer(keys.generate(tmp / name)[0])


def _approval_line(
    signer: keys.Signer,
    commit: str,
    deltas: list[Delta],
    paths: list[PathChange],
    flake_dir: str = "",
) -> bytes:
    stmt = approval.statement(
        commit=commit, base_ref="refs/heads/main", base_commit=B, merge_base=B,
        flake_dir=flake_dir, reason="ok", deltas=deltas, paths=paths,
    )  # fmt: skip
    return dsse.sign(stmt.dump_bytes(), [signer]).to_json().encode()


def _policies(
    tmp: Path, builder: keys.Signer, *reviewers: keys.Signer
) -> tuple[TrustPolicy, ReviewPolicy]:
    trust = TrustPolicy((TrustedKey("alice", builder.public),))
    rules = ReviewPolicy(
        reviewers=tuple(TrustedKey(f"r{i}", r.public) for i, r in enumerate(reviewers))
    )
    return trust, rules


def test_an_approval_counts_for_exactly_what_it_lists(tmp_path: Path) -> None:
    alice, carol, dave = _key(tmp_path, "alice"), _key(tmp_path, "carol"), _key(tmp_path, "dave")
    trust, rules = _policies(tmp_path, alice, carol, dave)
    removed = Delta("suite", "removed-test", "t_mul")
    edit = PathChange("tests/suite.sh", BLOB, BLOB2, "tests/**")
    notes = [(A, _approval_line(carol, A, [removed], [edit]))]
    idx = results.read(notes, trust.active_keys(), rules.active_reviewers())
    approvers, ignored = compare._approvals(idx, {A}, "", trust, rules)
    assert ignored == []
    review = Review(
        Base("refs/heads/main", B, B), rules,
        deltas=(removed, Delta("suite", "removed-test", "t_sub")),
        paths=(edit, PathChange("tests/suite.sh", BLOB, "100644 " + "3" * 40, "tests/**")),
        approvers=approvers,
    )  # fmt: skip
    assert [i.describe() for i in review.blocking] == [
        "suite: test removed: t_sub",
        "tests/suite.sh modified",
    ]
    assert review.approved_by(removed) == ("r0",)
    assert not review.ok and "t_sub" in review.reason() and "t_mul" not in review.reason()
    # Two approvals required: one reviewer is not enough.
    strict = ReviewPolicy(reviewers=rules.reviewers, approvals=2)
    assert Review(Base("m", B, B), strict, deltas=(removed,), approvers=approvers).blocking == [
        removed
    ]


def test_approvals_that_do_not_count(tmp_path: Path) -> None:
    alice, carol = _key(tmp_path, "alice"), _key(tmp_path, "carol")
    trust, rules = _policies(tmp_path, alice, carol)
    removed = Delta("suite", "removed-test", "t_mul")
    line = _approval_line(carol, A, [removed], [])
    # Tampered after signing: the test named is another one. The signature fails: nothing.
    env = json.loads(line)
    payload = base64.b64decode(env["payload"]).replace(b"t_mul", b"t_sub")
    env["payload"] = base64.b64encode(payload).decode()
    forged = json.dumps(env).encode()
    cases = {
        "another commit's approval pasted on A": [(A, _approval_line(carol, C, [removed], []))],
        "outside the searched history": [(C, _approval_line(carol, C, [removed], []))],
        "for the flake in another directory": [(A, _approval_line(carol, A, [removed], [], "sub"))],
        "tampered": [(A, forged)],
        "signed by a build key": [(A, _approval_line(alice, A, [removed], []))],
    }
    for what, notes in cases.items():
        idx = results.read(notes, trust.active_keys(), rules.active_reviewers())
        approvers, _ = compare._approvals(idx, {A}, "", trust, rules)
        assert approvers == {}, what
    # A key that is both a reviewer and a build key approves nothing, and that is said.
    both = ReviewPolicy(reviewers=(TrustedKey("alice", alice.public),))
    idx = results.read(
        [(A, _approval_line(alice, A, [removed], []))], trust.active_keys(), both.active_reviewers()
    )
    approvers, ignored = compare._approvals(idx, {A}, "", trust, both)
    assert approvers == {} and "also a trusted build key" in ignored[0]


def test_approved_items_are_read_strictly() -> None:
    with pytest.raises(AttestationError):
        Delta.from_json({"check": "s", "kind": "removed-everything"})
    with pytest.raises(AttestationError):
        Delta.from_json({"check": "s", "kind": "fewer-tests", "before": 3})
    with pytest.raises(AttestationError):
        PathChange.from_json({"path": "flake.nix", "before": "anything", "after": None})
    d = Delta("s", "fewer-tests", None, 3, 2)
    assert (
        Delta.from_json(d.as_json()) == d and d.key() != Delta("s", "fewer-tests", None, 3, 1).key()
    )


def test_review_policy_is_checked() -> None:
    assert from_data({}, "p").run_on == frozenset(
        {"removed-test", "newly-skipped", "newly-failing", "fewer-tests", "removed-check"}
    )
    rules = from_data({"review": {"run-on": ["removed-check"], "protected": ["ci/"]}}, "p")
    assert rules.run_on == {"removed-check"} and rules.protected == ("ci/",)
    # A delta kind the policy does not run on does not block; a protected path always does.
    review = Review(
        Base("m", B, B),
        rules,
        deltas=(Delta("s", "removed-test", "x"),),
        paths=(PathChange("ci/x", None, BLOB, "ci/"),),
    )
    assert [type(i).__name__ for i in review.blocking] == ["PathChange"]
    bad_tables: list[dict[str, Any]] = [
        {"review": {"run-on": ["everything"]}},
        {"review": {"protected": ["/etc/passwd"]}},
        {"review": {"protected": ["../up"]}},
        {"review": {"approvals": 0}},
        {"review": {"reviewer": {}}},
        {"review": {"reviewers": {"x": {"public_key": "not a pem"}}}},
    ]
    for bad in bad_tables:
        with pytest.raises(UsageError):
            from_data(bad, "p")


def test_a_copied_approval_does_not_hide_the_real_one(tmp_path: Path) -> None:
    alice, carol = _key(tmp_path, "alice"), _key(tmp_path, "carol")
    trust, rules = _policies(tmp_path, alice, carol)
    removed = Delta("suite", "removed-test", "t_mul")
    line = _approval_line(carol, A, [removed], [])
    # Someone who can push notes pastes carol's line onto a newer commit C as well.
    idx = results.read([(C, line), (A, line)], trust.active_keys(), rules.active_reviewers())
    approvers, ignored = compare._approvals(idx, {A, C}, "", trust, rules)
    assert approvers == {removed.key(): ("r0",)}
    assert "names another commit" in ignored[0]


def test_an_expired_reviewer_approves_nothing(tmp_path: Path) -> None:
    alice, carol = _key(tmp_path, "alice"), _key(tmp_path, "carol")
    trust = TrustPolicy((TrustedKey("alice", alice.public),))
    past = dt.date(2020, 1, 1)
    rules = ReviewPolicy(reviewers=(TrustedKey("carol", carol.public, expires=past),))
    removed = Delta("suite", "removed-test", "t_mul")
    notes = [(A, _approval_line(carol, A, [removed], []))]
    idx = results.read(notes, trust.active_keys(), rules.active_reviewers())
    assert compare._approvals(idx, {A}, "", trust, rules)[0] == {}
    fresh = ReviewPolicy(reviewers=(TrustedKey("carol", carol.public),))
    idx = results.read(notes, trust.active_keys(), fresh.active_reviewers())
    assert compare._approvals(idx, {A}, "", trust, fresh)[0] == {removed.key(): ("carol",)}
