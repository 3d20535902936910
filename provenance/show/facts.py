"""`provenance show`: what is attested for a commit, assembled into one `ShowReport`.

For a person and for an agent alike: the checks the commit evaluates to (one `nix eval`),
and for each what the notes on it and its searched ancestors say about exactly its
drvPath. Every line is authenticated first (verify.authentic reads the envelopes; DSSE
over the payload bytes against the build keys and the reviewer keys); a line no trusted
key signed is counted, never shown as a fact.

Per check: drvPath, outputs (and the digests the counted statements give them), the
provenance statements for that drvPath (signer by policy name, its tier, the commit it
was made on, reused when that is an ancestor, whether it counts: clean, same definition,
exactly the outputs, a recorded environment that proves it), whether the threshold is
met (trust.count_signers, the rule gate and verify apply), the tests of the trusted
test-result statements, and the reviewers' verification summaries (VSAs) of those
outputs. Then the approvals (review/approval.py) in the history, and with --base the
comparison of review/compare.py. render.py prints it; docs/show.md is the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.doors.git import Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH
from provenance.errors import AttestationError, VerificationError
from provenance.formats import dsse
from provenance.formats.claims import (
    ProvenanceClaim,
    load_statement,
    parse_provenance,
    test_result_binding,
    test_result_outcome,
)
from provenance.formats.uris import (
    APPROVAL_V1,
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    VSA_V1,
    flake_subdir,
    git_file_flake,
)
from provenance.policy.definition import Definitions
from provenance.policy.environment import recorded_problem
from provenance.policy.trust import Endorsement, TrustPolicy, count_signers
from provenance.review import approval, results
from provenance.review.compare import Review, Scope, compare, resolve_base
from provenance.review.policy import ReviewPolicy, from_commit
from provenance.show.model import (
    ApprovalFacts,
    Attested,
    CheckFacts,
    ShowReport,
    Verified,
)
from provenance.verify.authentic import read_notes

__all__ = ["ShowReport", "ShowRequest", "show"]


@dataclass(frozen=True)
class ShowRequest:
    flake_dir: Path
    rev: str = "HEAD"
    trust: TrustPolicy = field(default_factory=lambda: TrustPolicy(()))
    rules: ReviewPolicy | None = None  # reviewer keys, to name approvals' signers
    base: str | None = None
    base_rules: ReviewPolicy | None = None  # --policy's [review]; None: the base's own


@dataclass
class _Lines:
    claims: list[tuple[str, ProvenanceClaim, frozenset[str]]] = field(default_factory=list)
    tests: dict[str, list[tuple[results.TestSet, str]]] = field(default_factory=dict)
    vsas: list[tuple[str, dict[str, Any], frozenset[str]]] = field(default_factory=list)
    approvals: list[tuple[str, dict[str, Any], frozenset[str]]] = field(default_factory=list)
    untrusted: set[str] = field(default_factory=set)
    untrusted_lines: int = 0
    unreadable: int = 0


def _read(git: Git, commit: str, trust: TrustPolicy, rules: ReviewPolicy, fix: Any) -> _Lines:
    builders = {k.key.keyid for k in trust.keys}
    reviewers = {k.key.keyid for k in rules.reviewers}
    keys = list({k.keyid: k for k in [*trust.active_keys(), *rules.active_reviewers()]}.values())
    out = _Lines()
    for att in read_notes(git, commit, DEFAULT_SEARCH_DEPTH):
        if att.envelope is None:
            out.unreadable += 1
            continue
        # read_notes names a note by its commit's first 12 characters: back to the full id.
        note_commit = fix(att.source.split()[2]) if att.source.startswith("note on ") else commit
        try:
            verified = dsse.verify(att.envelope, keys)
            stmt = load_statement(verified.payload)
        except VerificationError:
            out.untrusted_lines += 1
            out.untrusted.update(s.keyid[:16] for s in att.envelope.signatures if s.keyid)
            continue
        except AttestationError:
            out.unreadable += 1
            continue
        by_builder, anyone = verified.keyids & builders, verified.keyids
        ptype = stmt.get("predicateType")
        try:
            if ptype == SLSA_PROVENANCE_V1 and by_builder:
                out.claims.append((note_commit, parse_provenance(stmt), by_builder))
            elif ptype == TEST_RESULT_V01 and by_builder and (bound := test_result_binding(stmt)):
                outcome = test_result_outcome(stmt) or "unknown"
                out.tests.setdefault(bound[0], []).append((results.from_statement(stmt), outcome))
            elif ptype == VSA_V1:
                out.vsas.append((note_commit, stmt, anyone))
            elif ptype == APPROVAL_V1 and verified.keyids & reviewers:
                out.approvals.append((note_commit, stmt, verified.keyids & reviewers))
        except AttestationError:
            out.unreadable += 1
    return out


def show(req: ShowRequest, nix: Nix) -> ShowReport:
    flake_dir = req.flake_dir.resolve()
    git = Git(flake_dir)
    top = git.toplevel().resolve()
    subdir = flake_subdir(flake_dir, top)
    commit = git.rev_parse(req.rev)
    system = current_system()
    evaluated = nix.eval_checks(git_file_flake(str(top), rev=commit, subdir=subdir), system, None)
    window = git.rev_list(commit, DEFAULT_SEARCH_DEPTH)
    rules = req.rules or ReviewPolicy(source="none")
    by_prefix = {c[:12]: c for c in window}

    def fix(c: str) -> str:
        return by_prefix.get(c[:12], c)

    lines = _read(git, commit, req.trust, rules, fix)
    definitions = Definitions(git, commit, subdir)
    ctx = _Ctx(commit, frozenset(window), lines, req.trust, rules, definitions, fix, system)
    checks = [_check(n, ev.drv_path, ev.outputs, ctx) for n, ev in sorted(evaluated.items())]

    build_ids = {k.key.keyid for k in req.trust.keys}
    approvals = []
    for note_commit, stmt, keyids in lines.approvals:
        try:
            a = approval.parse(stmt, fix(note_commit), keyids)
        except AttestationError:
            continue
        approvals.append(
            ApprovalFacts(
                a,
                tuple(sorted(rules.reviewer_name(k) or k[:16] for k in keyids)),
                counts=a.commit == a.note_commit
                and not keyids & build_ids
                and a.flake_dir == subdir,
            )
        )
    review: Review | None = None
    if req.base is not None:
        base = resolve_base(git, req.base, commit, trusted=False)
        base_rules = req.base_rules or from_commit(git, base.commit, subdir, base.ref)
        scope = Scope(git, top, subdir, commit, system, evaluated, None, DEFAULT_SEARCH_DEPTH)
        review = compare(scope, base, nix, req.trust, base_rules)
    return ShowReport(
        rev=req.rev,
        commit=commit,
        flake=git_file_flake(str(top), subdir=subdir),
        system=system,
        trust=req.trust,
        reviewers=rules,
        checks=tuple(checks),
        approvals=tuple(approvals),
        untrusted_lines=lines.untrusted_lines,
        untrusted=tuple(sorted(lines.untrusted)),
        unreadable=lines.unreadable,
        review=review,
    )


@dataclass(frozen=True)
class _Ctx:
    commit: str
    window: frozenset[str]  # the commit and its searched ancestors
    lines: _Lines
    trust: TrustPolicy
    rules: ReviewPolicy
    definitions: Definitions
    fix: Any  # a note's 12-character commit -> the full id
    system: str


def _check(name: str, drv: str, outputs: dict[str, str], ctx: _Ctx) -> CheckFacts:
    commit, lines, trust, rules, fix = ctx.commit, ctx.lines, ctx.trust, ctx.rules, ctx.fix
    definitions, system = ctx.definitions, ctx.system
    attestations: list[Attested] = []
    counted: list[tuple[ProvenanceClaim, frozenset[str]]] = []
    other = 0
    wanted = {p: o for o, p in outputs.items()}
    for _, claim, keyids in lines.claims:
        if claim.check != name or claim.attribute != f"checks.{system}.{name}":
            continue
        if claim.drv_path != drv:
            other += 1
            continue
        problem = None
        if claim.dirty:
            problem = "made on a dirty tree"
        elif claim.commit not in ctx.window:
            problem = "made on a commit outside the searched history"
        elif not definitions.same_as(claim.commit):
            problem = "what defines the checks changed since"
        elif dict(claim.output_names) != wanted:
            problem = "its subjects are not exactly the check's outputs"
        else:
            problem = recorded_problem(claim.internal, trust.environment)
        for k in sorted(keyids):
            attestations.append(
                Attested(
                    signer=trust.name_of(k),
                    keyid=k,
                    tier=claim.trust_tier,
                    commit=fix(claim.commit),
                    reused=fix(claim.commit) != commit,
                    output_check=claim.output_check,
                    problem=problem,
                )
            )
        if problem is None:
            counted.append((claim, keyids))
    tally = count_signers(trust, [Endorsement.of(k, c.subjects) for c, k in counted])
    digests = dict(tally.subjects)
    runs = lines.tests.get(drv, [])
    tests = results.worst([t for t, _ in runs]) if runs else None
    outcomes = {o for _, o in runs}
    test_result = next((o for o in ("FAILED", "WARNED", "PASSED") if o in outcomes), None)
    paths = set(outputs.values())
    verified = []
    for note_commit, stmt, keyids in lines.vsas:
        subjects = {s.get("name") for s in stmt.get("subject", []) if isinstance(s, dict)}
        pred = stmt.get("predicate") if isinstance(stmt.get("predicate"), dict) else {}
        if subjects != paths or not isinstance(pred, dict):
            continue
        for k in sorted(keyids):
            verified.append(
                Verified(
                    verifier=rules.reviewer_name(k) or trust.name_of(k),
                    keyid=k,
                    result=str(pred.get("verificationResult")),
                    levels=tuple(str(x) for x in pred.get("verifiedLevels") or []),
                    time=str(pred.get("timeVerified", "")),
                    commit=fix(note_commit),
                )
            )
    unsound = [a for a in attestations if a.problem]
    if test_result == "FAILED":
        proven, reason = False, "a trusted key attested its tests FAILED"
    elif tally.passed and tally.dissent:
        proven, reason = False, f"trusted signers disagree on the output digests: {tally.reason}"
    elif unsound and not tally.count:
        first = unsound[0]
        reason = f"the attestation by {first.signer} on {first.commit[:12]} does not count: {first.problem}"
        proven = False
    elif attestations or tally.count:
        proven, reason = tally.passed, tally.reason
    else:
        proven, reason = False, "no trusted attestation for this drvPath"
    return CheckFacts(
        name=name,
        drv_path=drv,
        outputs=dict(outputs),
        digests={o: digests.get(p) for o, p in outputs.items()},
        proven=proven,
        reason=reason,
        attestations=tuple(attestations),
        tests=tests,
        test_result=test_result,
        verifications=tuple(verified),
        other_drv_paths=other,
    )
