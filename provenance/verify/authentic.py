"""Level 1 of `provenance verify`: read the envelopes, and which of them are authentic.

Reads the attestations (every line of the given bundles, strictly; or the notes on --rev
and its ancestors, as a shared log) and checks each one's DSSE signatures against the
trust policy over the PAE of the payload bytes before anything is parsed (any one
trusted key authenticates); then payloadType, predicateType and the statement's shape
(claims.py). Apart from the later levels because it needs neither nix nor the flake:
only the bytes, the keys and the formats.
"""

from __future__ import annotations

from pathlib import Path

from provenance.doors.git import Git
from provenance.doors.notes import history_notes
from provenance.errors import AttestationError, VerificationError
from provenance.formats import bundle, dsse
from provenance.formats.claims import (
    load_statement,
    parse_provenance,
    test_result_binding,
    test_result_outcome,
)
from provenance.formats.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from provenance.policy import tier
from provenance.policy.trust import TrustPolicy
from provenance.verify.drvdiff import short_name
from provenance.verify.verification import AUTHENTIC, Attestation


def _split_lines(data: bytes) -> list[bytes]:
    # Same rule as bundle.parse_pairs: blank lines are skipped, the rest are envelopes.
    return [ln for ln in data.split(b"\n") if ln.strip()]


def read_bundle(path: Path) -> list[Attestation]:
    return [
        Attestation(f"{path.name} line {n}", ln, env, strict=True)
        for n, (ln, env) in enumerate(bundle.read_pairs(path), 1)
    ]


def read_notes(git: Git, rev: str, depth: int) -> list[Attestation]:
    """The notes on rev and on its ancestors within the bound, newest first."""
    _, notes = history_notes(git, rev, depth)
    atts: list[Attestation] = []
    for commit, data in notes:
        for n, ln in enumerate(_split_lines(data), 1):
            att = Attestation(f"note on {commit[:12]} line {n}", ln, None, False, commit != rev)
            try:
                att.envelope = dsse.Envelope.from_json(ln)
            except AttestationError as e:
                att.skip(AUTHENTIC, "envelope", f"not a DSSE envelope ({e.message})")
            atts.append(att)
    return atts


def authenticate(att: Attestation, policy: TrustPolicy) -> None:
    env = att.envelope
    if env is None:
        return
    try:
        # Any one trusted key authenticates a statement; the policy's threshold is
        # counted per check, over statements that agree (trust.count_signers).
        verified = dsse.verify(env, policy.active_keys())
    except VerificationError as e:
        expired = policy.expired_signers(env)
        detail = (
            f"signed by {', '.join(expired)}: that trust has expired (trust: {policy.source})"
            if expired
            else f"{e.message} (trust: {policy.source})"
        )
        if att.strict:
            att.fail(AUTHENTIC, "signature", detail)
        else:
            att.skip(AUTHENTIC, "signature", detail)
        return
    att.keyids = verified.keyids
    att.signers = tuple(sorted(policy.name_of(k) for k in verified.keyids))
    att.ok(AUTHENTIC, "signature", f"signed by {', '.join(att.signers)}")
    try:
        stmt = load_statement(verified.payload)
    except AttestationError as e:
        att.fail(AUTHENTIC, "statement", e.message)
        return
    ptype = stmt.get("predicateType")
    bound = test_result_binding(stmt) if ptype == TEST_RESULT_V01 else None
    result = test_result_outcome(stmt)
    if bound is not None and result == "FAILED":
        # A trusted key says the tests of this derivation failed: judged once the flake is
        # evaluated (binding.judge_failed_results), whatever provenance says about the same drvPath.
        att.failed_result = bound[0]
        att.ok(AUTHENTIC, "predicateType", f"test-result FAILED for {bound[0]}")
        return
    if bound is not None and result is not None:
        # build writes a test-result statement beside each check's provenance: signed and
        # authentic, but it claims nothing about the build, so it is reported, not counted.
        att.skip(
            AUTHENTIC,
            "predicateType",
            f"test-result {result} for {short_name(bound[0])}: not a build claim",
        )
        return
    if ptype != SLSA_PROVENANCE_V1:
        detail = f"predicateType is {ptype!r}, expected {SLSA_PROVENANCE_V1}"
        if att.strict:
            att.fail(AUTHENTIC, "predicateType", detail)
        else:
            att.skip(AUTHENTIC, "predicateType", f"{detail}: not a build claim")
        return
    try:
        att.claim = parse_provenance(stmt)
    except AttestationError as e:
        att.fail(AUTHENTIC, "statement", f"signed statement is malformed: {e.message}")
        return
    att.ok(AUTHENTIC, "statement", f"SLSA provenance v1 for check {att.claim.check}")
    # Shown, not judged here: a tier the policy requires is a level-2 rule (binding.py).
    judged = tier.judge(att.claim, att.keyids, policy.service_keys())
    att.tier = judged.name
    att.ok(AUTHENTIC, "tier", f"{judged.name}: {judged.detail}")
