"""What the notes prove about each check: signed notes read into `Evidence`, and
`judge`, the verdict on one required check (step 3 of `gate`'s docstring).

`read_evidence` authenticates every note line against the trust policy and keeps the
provenance claims and failed test results it can read, counting what it cannot (bad
signatures, untrusted signers, malformed lines) so a verdict can say why CI must run.
`judge` applies the rules: exact drvPath, name, attribute and system; a clean tree; a
commit in the searched window whose check definition is the revision's; subjects that
are exactly the check's outputs; a recorded Nix environment that proves the claim; the
tier the policy requires (`require-tier`, policy/tier.py); and verify's threshold rule
over the agreeing signers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.ci.report import CheckVerdict
from provenance.errors import AttestationError, VerificationError
from provenance.formats import dsse
from provenance.formats.claims import ProvenanceClaim, load_statement, parse_provenance
from provenance.formats.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from provenance.policy import nixenv, tier
from provenance.policy.definition import Definitions, describe
from provenance.policy.trust import Endorsement, TrustPolicy, count_signers


@dataclass(frozen=True)
class _Claim:
    note_commit: str  # the commit the note hangs on
    claim: ProvenanceClaim
    keyids: frozenset[str]


@dataclass(frozen=True)
class _Failure:
    note_commit: str
    drv_paths: frozenset[str]  # what the failed test-result names
    keyids: frozenset[str]


@dataclass
class Evidence:
    claims: list[_Claim] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    malformed: int = 0  # lines that are not envelopes / statements we can read
    bad_signature: int = 0  # lines naming a trusted keyid whose signature fails
    expired: set[str] = field(default_factory=set)  # trusted signers whose trust ran out
    # drvPath -> short keyids of signers the policy does not trust (or no longer trusts)
    # that claim it. Read from unverified payloads, so used only to explain a "run",
    # never to pass anything.
    unproven: dict[str, set[str]] = field(default_factory=dict)
    untrusted: set[str] = field(default_factory=set)  # keyid hints of other signers
    lines: int = 0


def read_evidence(notes: list[tuple[str, bytes]], policy: TrustPolicy) -> Evidence:
    keys = policy.active_keys()
    trusted_ids = {k.key.keyid for k in policy.keys}
    ev = Evidence()
    for commit, body in notes:
        for raw in body.split(b"\n"):
            if not raw.strip():
                continue
            ev.lines += 1
            try:
                env = dsse.Envelope.from_json(raw)
            except AttestationError:
                ev.malformed += 1
                continue
            try:
                verified = dsse.verify(env, keys)
            except VerificationError:
                hints = {s.keyid for s in env.signatures}
                expired = policy.expired_signers(env) if hints & trusted_ids else ()
                if expired:
                    ev.expired.update(expired)  # genuine, but the policy no longer trusts it
                elif hints & trusted_ids:
                    ev.bad_signature += 1  # claims a trusted key, signature fails: tampered
                    continue
                else:
                    ev.untrusted.update(h[:16] for h in hints)
                drv = _claimed_drv(env.payload)
                if drv:
                    ev.unproven.setdefault(drv, set()).update(expired or {h[:16] for h in hints})
                continue
            try:
                stmt = load_statement(verified.payload)
                ptype = stmt.get("predicateType")
                if ptype == SLSA_PROVENANCE_V1:
                    ev.claims.append(_Claim(commit, parse_provenance(stmt), verified.keyids))
                elif ptype == TEST_RESULT_V01:
                    failed = _failed_drvs(stmt)
                    if failed:
                        ev.failures.append(_Failure(commit, failed, verified.keyids))
            except AttestationError:
                ev.malformed += 1
    return ev


def _claimed_drv(payload: bytes) -> str | None:
    """The drvPath an *unverified* provenance payload claims (for explaining, only)."""
    try:
        stmt = load_statement(payload)
        if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
            return None
        return parse_provenance(stmt).drv_path
    except AttestationError:
        return None


def _failed_drvs(stmt: dict[str, Any]) -> frozenset[str]:
    """drvPaths named by a test-result statement whose result is not PASSED/WARNED."""
    pred = stmt.get("predicate")
    if not isinstance(pred, dict) or pred.get("result") in ("PASSED", "WARNED"):
        return frozenset()
    named: set[str] = set()
    for rd in [*(pred.get("configuration") or []), *(stmt.get("subject") or [])]:
        if not isinstance(rd, dict):
            continue
        notes = rd.get("annotations")
        notes = notes if isinstance(notes, dict) else {}
        for v in (rd.get("name"), rd.get("uri"), notes.get("drvPath"), notes.get("nixStorePath")):
            if isinstance(v, str) and v.endswith(".drv"):
                named.add(v)
    return frozenset(named)


def _short(commit: str) -> str:
    return commit[:12]


@dataclass(frozen=True)
class Context:
    system: str
    commit: str  # REV, resolved
    window: tuple[str, ...]  # REV and its searched ancestors, newest first
    evidence: Evidence
    policy: TrustPolicy
    definitions: Definitions  # what defines the checks at REV, compared with ancestors
    outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # check -> out -> path


def _unsound(c: _Claim, outputs: Mapping[str, str], policy: TrustPolicy) -> str | None:
    """Why an authentic, bound claim still proves nothing, or None (verify's rule too)."""
    if dict(c.claim.output_names) != {p: o for o, p in outputs.items()}:
        return "its subjects are not exactly the check's outputs (names and store paths)"
    problem = nixenv.recorded_problem(c.claim.internal, policy.environment)
    if problem is None and policy.require_tier is not None:
        # A lower tier than the policy asks for: CI runs (tier.py: what counts as isolated).
        problem = tier.shortfall(
            tier.judge(c.claim, c.keyids, policy.service_keys()), policy.require_tier
        )
    return problem


def judge(name: str, drv: str, ctx: Context) -> CheckVerdict:
    system, commit, ev, policy = ctx.system, ctx.commit, ctx.evidence, ctx.policy
    in_window = set(ctx.window)
    depth = len(ctx.window)
    for f in ev.failures:
        if drv in f.drv_paths:
            reason = f"a trusted key attested it FAILED (note on {_short(f.note_commit)})"
            return CheckVerdict(name, drv, passed=False, reason=reason, commit=f.note_commit)
    same_check = [
        c
        for c in ev.claims
        if c.claim.check == name
        and c.claim.attribute == f"checks.{system}.{name}"
        and c.claim.system == system
    ]
    exact = [c for c in same_check if c.claim.drv_path == drv]
    usable = [c for c in exact if not c.claim.dirty and c.claim.commit in in_window]
    # An ancestor's proof counts only for the definition it was made on (definition.py).
    defined = [c for c in usable if ctx.definitions.same_as(c.claim.commit)]
    problems = [(c, p) for c in defined if (p := _unsound(c, ctx.outputs.get(name, {}), policy))]
    good = [c for c in defined if not any(c is b for b, _ in problems)]
    if problems and not good:
        bad, problem = problems[0]
        reason = f"the attestation on {_short(bad.claim.commit)} does not prove it: {problem}"
        return CheckVerdict(name, drv, passed=False, reason=reason, commit=bad.claim.commit)
    if good:
        # `good` follows the walk, newest first: on a tie the newest agreeing group counts.
        tally = count_signers(policy, [Endorsement.of(c.keyids, c.claim.subjects) for c in good])
        agreeing = [
            c for c in good if Endorsement.of(c.keyids, c.claim.subjects).subjects == tally.subjects
        ]
        at = agreeing[0].claim.commit  # the newest commit that carries it
        if not tally.passed:
            return CheckVerdict(
                name, drv, passed=False, reason=tally.reason, commit=at, signers=tally.signers
            )
        if tally.dissent:
            # Trusted keys built the same derivation and got different outputs: the check
            # is not reproducible, or a machine is lying. Doubt means run.
            reason = f"trusted signers disagree on the output digests: {tally.reason}"
            return CheckVerdict(
                name, drv, passed=False, reason=reason, commit=at, signers=tally.signers
            )
        how = (
            "on this commit"
            if at == commit
            else f"on {_short(at)}, reused (same drvPath, same definition)"
        )
        reason = f"attested by {', '.join(tally.signers)} {how}"
        if policy.threshold > 1:
            reason += f": {tally.reason}"
        tiers = tuple(c.claim.trust_tier for c in agreeing)
        return CheckVerdict(
            name, drv, True, reason, commit=at, signers=tally.signers, trust_tiers=tiers
        )
    if usable:
        at = usable[0].claim.commit
        changed = describe(ctx.definitions.changes_since(at))
        reason = (
            f"attested on {_short(at)} for this drvPath, but what defines the checks changed "
            f"since ({changed}): a proof counts only for the definition it was made on"
        )
    elif any(c.claim.dirty for c in exact):
        reason = "only dirty-tree attestations exist for this drvPath; they never count"
    elif exact:
        reason = (
            f"the attestation for this drvPath names commit {_short(exact[0].claim.commit)}, "
            f"which is not among the last {depth} commit(s) of the revision"
        )
    elif drv in ev.unproven:
        who = ", ".join(sorted(ev.unproven[drv]))
        reason = f"this drvPath is attested only by untrusted key(s) {who}"
    elif same_check:
        newest = same_check[0]
        reason = (
            f"attested on {_short(newest.claim.commit)} for a different drvPath "
            f"({newest.claim.drv_path.rsplit('/', 1)[-1]}): an input of the check changed"
        )
    elif ev.expired:
        reason = f"signed only by key(s) whose trust expired: {', '.join(sorted(ev.expired))}"
    elif ev.bad_signature:
        reason = f"{ev.bad_signature} note line(s) fail signature verification (corrupted note?)"
    elif ev.malformed:
        reason = f"{ev.malformed} note line(s) are malformed (corrupted note?)"
    elif ev.untrusted:
        reason = f"notes are signed only by untrusted key(s) {', '.join(sorted(ev.untrusted))}"
    elif ev.lines == 0:
        reason = f"no attestation notes on the revision or its ancestors (searched {depth})"
    else:
        reason = f"no trusted attestation for this check within the last {depth} commit(s)"
    return CheckVerdict(name, drv, passed=False, reason=reason)
