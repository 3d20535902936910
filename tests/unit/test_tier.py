"""Tiers: what a statement counts as (policy/tier.py) and how a policy asks for one."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.errors import UsageError
from provenance.formats import keys
from provenance.formats.claims import ProvenanceClaim
from provenance.formats.uris import BUILDER_ID, SERVICE_BUILDER_ID
from provenance.policy import tier, trust


def _claim(
    tier_says: str, builder: str, requester: dict[str, object] | None = None
) -> ProvenanceClaim:
    return ProvenanceClaim(
        check="det",
        attribute="checks.x86_64-linux.det",
        system="x86_64-linux",
        drv_path="/nix/store/" + "a" * 32 + "-det.drv",
        flake="git+file:///r",
        commit="c" * 40,
        dirty=False,
        subjects={},
        output_names={},
        output_check="built",
        trust_tier=tier_says,
        builder_id=builder,
        internal={"requester": requester} if requester else {},
    )


SERVICE = {"s" * 64: "build-service"}


def test_isolated_needs_a_service_key_and_the_services_builder_id() -> None:
    who = {"user": "agent", "uid": 1001, "pid": 42}
    judged = tier.judge(_claim("isolated", SERVICE_BUILDER_ID, who), frozenset(SERVICE), SERVICE)
    assert judged == tier.Tier(
        "isolated", "signed by service key build-service; built for agent (uid 1001, pid 42)"
    )


@pytest.mark.parametrize(
    ("says", "builder", "keyids", "why"),
    [
        ("isolated", SERVICE_BUILDER_ID, {"k" * 64}, "none of its signers is a service key"),
        ("isolated", BUILDER_ID, set(SERVICE), "its builder.id is"),
        ("local", SERVICE_BUILDER_ID, set(SERVICE), "says 'local'"),
        ("root", SERVICE_BUILDER_ID, set(SERVICE), "says 'root'"),
    ],
    ids=["agent-key-claims-isolated", "wrong-builder", "service-says-local", "unknown-tier"],
)
def test_everything_else_is_local(says: str, builder: str, keyids: set[str], why: str) -> None:
    judged = tier.judge(_claim(says, builder), frozenset(keyids), SERVICE)
    assert judged.name == "local"
    assert why in judged.detail


def test_shortfall() -> None:
    local, isolated = tier.Tier("local", "x"), tier.Tier("isolated", "y")
    assert tier.shortfall(local, None) is None
    assert tier.shortfall(local, "local") is None
    assert tier.shortfall(isolated, "isolated") is None
    assert "its tier is local (x); the policy requires isolated" in (
        tier.shortfall(local, "isolated") or ""
    )


def _policy(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "provenance.toml"
    p.write_text(text)
    return p


def test_a_policy_marks_service_keys_and_requires_a_tier(tmp_path: Path) -> None:
    _, pub, _ = keys.generate(tmp_path / "svc")
    _, other, _ = keys.generate(tmp_path / "alice")
    path = tmp_path / "provenance.toml"
    trust.add_key(path, "alice", other)
    svc = trust.add_key(path, "build-service", pub, service=True)
    assert svc.service
    assert "service = true" in path.read_text()
    path.write_text(path.read_text().replace("[trust]\n", '[trust]\nrequire-tier = "isolated"\n'))
    policy = trust.load_policy(path)
    assert policy.require_tier == "isolated"
    assert policy.service_keys() == {svc.key.keyid: "build-service"}
    assert [k.service for k in policy.keys] == [False, True]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('require-tier = "ci"\n', "must be one of local, isolated"),
        ('require-tier = "isolated"\n', "no key is marked service = true"),
    ],
)
def test_bad_tier_settings(tmp_path: Path, extra: str, says: str) -> None:
    _, pub, _ = keys.generate(tmp_path / "k")
    path = tmp_path / "provenance.toml"
    trust.add_key(path, "alice", pub)
    path.write_text(path.read_text().replace("[trust]\n", f"[trust]\n{extra}"))
    with pytest.raises(UsageError, match=says):
        trust.load_policy(path)


def test_service_must_be_a_boolean(tmp_path: Path) -> None:
    _, pub, _ = keys.generate(tmp_path / "k")
    path = tmp_path / "provenance.toml"
    trust.add_key(path, "alice", pub)
    path.write_text(path.read_text() + 'service = "yes"\n')
    with pytest.raises(UsageError, match=r"trust\.keys\.alice\.service must be true or false"):
        trust.load_policy(path)
