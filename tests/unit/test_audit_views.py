"""Per-commit and per-branch views of the ledger: which result decides, who counts as the
prover, which commit stands for a branch (audit/views.py)."""

from __future__ import annotations

from pathlib import Path

from provenance.audit import ledger as L
from provenance.audit import summary as audit
from tests.unit.test_audit import chk, put

C1, C2 = "1" * 40, "2" * 40


def test_the_latest_decided_result_at_a_commit_decides(tmp_path: Path) -> None:
    p = tmp_path / "ledger.jsonl"
    put(p, 1, [chk("det", "failed"), chk("chain", "passed")], commit=C1, branch="main")
    put(p, 2, [chk("det", "passed")], commit=C1, branch="main")  # fixed by a rebuild
    put(p, 3, [chk("det", "skipped")], commit=C1, command="gate")  # decides nothing
    bob = L.Actor(user="bob", host="ci-1", keyid="cd" * 32)
    put(p, 4, [chk("det", "cached"), chk("chain", "cached")], commit=C1, actor=bob, branch="fix")
    put(p, 5, [chk("det", "reused", "ci")], commit=C2, command="gate", branch="main")
    put(p, 6, [chk("det", "failed")], commit=C2, branch="topic")
    s = audit.summary(p)
    views = {v.commit: v for v in s.commit_views}
    c1 = views[C1]
    assert c1.proven and c1.checks == {"chain": "cached", "det": "cached"}
    assert c1.provers == ("alice@box (build, local)", "bob@ci-1 key cdcdcdcdcdcd (build, local)")
    assert (c1.builds, c1.cache_hits) == (2, 1)
    # C2: a gate reused a proof (no prover), then a build on another branch failed it.
    c2 = views[C2]
    assert not c2.proven and c2.provers == () and c2.branches == ("main", "topic")
    # A branch shows its newest recorded commit: main's is C2 (day 5), topic's too.
    assert [(b.branch, b.head.commit) for b in s.branches] == [
        ("main", C2),
        ("fix", C1),
        ("topic", C2),
    ]
    md = audit.render_markdown(s)
    assert "| main | 222222222222 | not proven | - |" in md
    # Markdown (PR comments) names keys, not people, unless asked to.
    assert (
        "| fix | 111111111111 | proven | someone (build, local); key cdcdcdcdcdcd (build, local) |"
        in md
    )
    assert "@" not in md
    assert "bob@\u200bci-1 key cdcdcdcdcdcd" in audit.render_markdown(s, actors=True)
    assert s.as_json()["branches"][0]["branch"] == "main"
