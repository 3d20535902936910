"""What the ledger records must not mislead whoever reads it (real nix, real git, the CLI).

Each test is one way it misled a team lead: a dirty build counted as a clean pass, a
gate that said "run CI" recorded as a failure, a gate reusing a laptop's attestation as
proven on CI, a verify with the wrong key as failed checks, cache hits raising the pass
rate, the reviewer's signing key missing, one repository listed twice once it got a
remote, and `user@host` in Markdown meant for PR comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.audit import html as report_html
from provenance.audit import ledger as L
from provenance.audit import summary as audit
from provenance.audit.render import md as md_escape
from provenance.cli import app
from provenance.formats import keys
from tests.conftest import git, make_flake

pytestmark = pytest.mark.nix
runner = CliRunner()
# `fixme` fails at the commit; the uncommitted edit below makes it pass.
FIXME = '{ mk, tests }: { fixme = mk "fixme-check" "exit 1" { }; }\n'


def _entries(repo: Path) -> list[L.Entry]:
    chain = L.verify_chain(repo / ".provenance" / "ledger.jsonl", keep=True)
    assert chain.ok
    return list(chain.items)


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def test_a_dirty_build_is_recorded_dirty_and_never_passes_audit_check(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo", extra_checks=FIXME)
    key, _ = keypair
    r = runner.invoke(app, ["build", "--key", str(key), str(repo), "-q", "--check", "fixme"])
    assert r.exit_code == 1  # the committed tests fail
    (repo / "extra-checks.nix").write_text(FIXME.replace("exit 1", "busybox mkdir $out"))
    r = runner.invoke(
        app, ["build", "--key", str(key), str(repo), "-q", "--check", "fixme", "--allow-dirty"]
    )
    assert r.exit_code == 0, r.stderr  # an uncommitted fix passes
    failed, dirty = _entries(repo)
    assert failed.dirty is None and dirty.dirty is True
    assert {c.name: c.result for c in dirty.checks} == {"fixme": "passed"}
    assert json.loads((repo / ".provenance" / "ledger.jsonl").read_text().splitlines()[1])["dirty"]

    ledger = repo / ".provenance" / "ledger.jsonl"
    commit = git(repo, "rev-parse", "HEAD")
    r = runner.invoke(
        app, ["audit", "check", "--ledger", str(ledger), "--require", "fixme", "--commit", commit]
    )
    assert r.exit_code == 1 and "FAIL: require fixme" in r.stderr
    assert "latest result failed" in r.stderr  # the committed result, not the dirty pass

    s = audit.summary(ledger)
    (fixme,) = s.checks
    assert (fixme.passed, fixme.failed, fixme.dirty, s.dirty_runs) == (0, 1, 1, 1)
    assert "1 build(s) of a dirty tree" in audit.render_text(s)
    assert "**dirty**" in audit.render_markdown(s)
    page = report_html.render(s)
    assert 'id="dirty-runs">1<' in page and "passed (dirty tree)" in page
    assert '<span class="pass">passed</span>' not in page


def test_gate_verify_and_cache_hits_are_recorded_for_what_they_are(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, pub = keypair
    _, other_pub, _ = keys.generate(tmp_path / "stranger")
    reviewer, _, reviewer_id = keys.generate(tmp_path / "reviewer")
    assert runner.invoke(app, ["build", "--key", str(key), str(repo), "-q"]).exit_code == 0
    assert runner.invoke(app, ["build", "--key", str(key), str(repo), "-q"]).exit_code == 0
    # verify with a key that signed nothing here: nothing is proven, nothing failed
    r = runner.invoke(app, ["verify", "--flake", str(repo), "--trusted-key", str(other_pub)])
    assert r.exit_code == 1
    # the reviewer signs a verification summary with their own key
    r = runner.invoke(
        app,
        ["verify", "--flake", str(repo), "--trusted-key", str(pub), "--sign-with", str(reviewer)],
    )
    assert r.exit_code == 0, r.stderr
    # on CI: the gate reuses the laptop's attestation; then a gate that must run CI
    monkeypatch.setenv("CI", "true")
    r = runner.invoke(app, ["gate", str(repo), "--trusted-key", str(pub), "--no-fetch"])
    assert r.exit_code == 0 and "skip=true" in r.stderr, r.stderr
    r = runner.invoke(app, ["gate", str(repo), "--trusted-key", str(other_pub), "--no-fetch"])
    assert r.exit_code == 0 and "skip=false" in r.stderr, r.stderr

    built, cached, wrong_key, signed, reused, run_ci = _entries(repo)
    assert {c.result for c in cached.checks} == {"cached"}
    assert not wrong_key.ok
    assert {c.name: c.result for c in wrong_key.checks} == {
        "chain": "unverified",
        "det": "unverified",
    }
    assert signed.actor.keyid == reviewer_id
    assert {(c.result, c.tier) for c in reused.checks} == {("reused", "local")}
    assert reused.tier == "local"  # proven on a laptop, whoever reused it
    assert run_ci.ok and {c.result for c in run_ci.checks} == {"skipped"}

    s = audit.summary(repo / ".provenance" / "ledger.jsonl")
    det = next(c for c in s.checks if c.name == "det")
    # built once, verified once: the cache hit and the reuse do not count again, the
    # wrong key and the gate that ran CI count as nothing
    assert (det.passed, det.repeated, det.failed, det.other) == (2, 2, 0, 2)
    assert s.tiers["ci"] == 0
    assert s.ok_runs == 5
    md = audit.render_markdown(s)
    who = f"{md_escape(built.actor.user)}@\u200b{md_escape(built.actor.host)}"
    assert "@" not in md and who in audit.render_markdown(s, actors=True)
    assert f"key {reviewer_id[:12]}" in md


def test_one_repository_stays_one_when_a_remote_is_added(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    repo = make_flake(tmp_path / "repo")
    key, _ = keypair
    assert runner.invoke(app, ["build", "--key", str(key), str(repo), "-q"]).exit_code == 0
    url = "https://example.invalid/acme/widgets.git"
    git(repo, "remote", "add", "origin", url)
    r = runner.invoke(app, ["build", "--key", str(key), str(repo), "-q", "--force"])
    assert r.exit_code == 0, r.stderr
    before, after = _entries(repo)
    assert (before.repo, after.repo) == (str(repo), url)  # what each run saw
    assert before.repo_path == after.repo_path == str(repo)
    assert audit.summary(repo / ".provenance" / "ledger.jsonl").repos == (url,)
