"""Trust tiers: what a statement's tier counts as under a policy (docs/verify.md, "Tiers").

- `local`: `provenance build` signed with a key that sits beside whoever ran it. The key
  holder could have signed anything.
- `isolated`: built and signed by the attestation service (`provenance serve`), which runs
  as its own Unix user and holds a key the requester cannot read (docs/service.md).

A statement *says* its tier (`internalParameters.trustTier`), but a claim is only as good as
the key behind it: an agent with a local key can sign `trustTier: isolated` as easily as
anything else. So a statement counts as isolated only when a key the policy marks as a
service key (`service = true`) signed it, and it says `isolated` with the service's
`builder.id`. Everything else counts as local. Apart from trust.py, which reads the policy
file, so that both it and the readers of statements (gate, verify) can use the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from provenance.formats.claims import ProvenanceClaim
from provenance.formats.uris import SERVICE_BUILDER_ID

LOCAL, ISOLATED = "local", "isolated"
TIERS = (LOCAL, ISOLATED)  # lowest first


@dataclass(frozen=True)
class Tier:
    name: str  # one of TIERS: what the statement counts as
    detail: str  # why, for a human


def _requester(claim: ProvenanceClaim) -> str:
    who = claim.internal.get("requester")
    if not isinstance(who, dict):
        return ""
    user, uid, pid = who.get("user"), who.get("uid"), who.get("pid")
    return f"; built for {user} (uid {uid}, pid {pid})"


def judge(claim: ProvenanceClaim, keyids: frozenset[str], service_keys: Mapping[str, str]) -> Tier:
    """The tier `claim` counts as, signed by `keyids`; `service_keys`: keyid -> name."""
    signed = sorted(service_keys[k] for k in keyids if k in service_keys)
    if claim.trust_tier != ISOLATED:
        return Tier(
            LOCAL, f"says {claim.trust_tier!r}: signed where it was built, by the key holder"
        )
    if not signed:
        return Tier(
            LOCAL,
            "the statement says isolated, but none of its signers is a service key of the "
            "policy (mark one with `service = true`)",
        )
    if claim.builder_id != SERVICE_BUILDER_ID:
        return Tier(
            LOCAL, f"the statement says isolated, but its builder.id is {claim.builder_id!r}"
        )
    return Tier(ISOLATED, f"signed by service key {', '.join(signed)}{_requester(claim)}")


def shortfall(tier: Tier, required: str | None) -> str | None:
    """Why `tier` is below what the policy requires, or None."""
    if required is None or TIERS.index(tier.name) >= TIERS.index(required):
        return None
    return (
        f"its tier is {tier.name} ({tier.detail}); the policy requires {required} "
        "(build it with `provenance build --service SOCKET`)"
    )
