"""Audit commands over synthetic ledgers: summary numbers, Markdown, the policy gate, roll-ups."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.audit import html as report_html
from provenance.audit import ledger as L
from provenance.audit import summary as audit
from provenance.cli import app
from provenance.errors import PolicyViolation, UsageError

DRV_A1, DRV_A2 = "/nix/store/a1-det.drv", "/nix/store/a2-det.drv"


def chk(name: str, result: str, tier: str = "local", drv: str | None = None) -> L.CheckRecord:
    return L.CheckRecord(name=name, drv_path=drv, result=result, tier=tier)  # type: ignore[arg-type]


def put(path: Path, day: int, checks: list[L.CheckRecord], **kw: Any) -> None:
    fields: dict[str, Any] = {
        "time": f"2025-03-{day:02d}T10:00:00.000Z",
        "command": "build",
        "ok": all(c.result != "failed" for c in checks),
        "actor": L.Actor(user="alice", host="box"),
        "repo": "/src/repo",
        "commit": f"{day:040x}",
        "checks": tuple(checks),
        "tier": L.highest_tier(checks, "local"),
        "duration_ms": 1000 * day,
    }
    fields.update(kw)
    L.append(path, L.Draft(**fields))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """6 runs: det passes 2 of 3 runs that decided, plus a cache hit and a gate's reuse
    (last: reused, on drv a2; reproduced on drv a1); chain fails twice."""
    p = tmp_path / "ledger.jsonl"
    put(p, 1, [chk("det", "passed", drv=DRV_A1), chk("chain", "passed")])
    put(p, 2, [chk("det", "failed", drv=DRV_A1), chk("chain", "failed")])
    put(p, 3, [chk("det", "passed", "reproduced", DRV_A1)], command="verify")
    put(p, 4, [chk("det", "cached", "ci", DRV_A2), chk("chain", "failed", "ci")])
    put(p, 5, [chk("det", "reused", "ci", DRV_A2), chk("chain", "skipped", "ci")], command="gate")
    put(p, 6, [], command="gate", ok=False, actor=L.Actor(user="bob", host="ci-1"))
    return p


def test_summary_numbers(ledger: Path) -> None:
    s = audit.summary(ledger)
    assert (s.runs, s.ok_runs, s.commits, s.results) == (6, 3, 6, 9)
    assert s.by_command == {"build": 3, "gate": 2, "verify": 1}
    (det,) = (c for c in s.checks if c.name == "det")
    (chain,) = (c for c in s.checks if c.name == "chain")
    # The cache hit and the reuse repeat earlier passes: counted, not in the pass rate.
    assert (det.runs, det.passed, det.repeated, det.failed) == (5, 2, 2, 1)
    assert det.pass_rate == pytest.approx(2 / 3)
    assert (chain.passed, chain.failed, chain.other) == (1, 2, 1)
    assert s.tiers == {"local": 2, "ci": 2, "reproduced": 1}  # passing results only
    assert s.pass_rate == pytest.approx(3 / 6)
    assert s.actors == ("alice@box", "bob@ci-1")
    assert [p.pass_rate for p in s.points][:2] == [1.0, 0.0]
    assert s.recent[0].seq == 5  # newest first
    text = audit.render_text(s)
    assert "6 (3 build, 2 gate, 1 verify); 3 succeeded" in text
    assert "2 local, 2 ci, 1 reproduced" in text and "66.7%" in text


def test_markdown_has_numbers_and_escapes(tmp_path: Path, ledger: Path) -> None:
    md = audit.render_markdown(audit.summary(ledger))
    assert "| 6 | 3 | 50.0% | 2 | 2 | 1 | 6 |" in md
    assert "| det | 5 | 66.7% | 1 | 2 | 1 | reused |" in md
    assert "alice" not in md and "box" not in md  # who ran it only when asked (--actors)
    md = audit.render_markdown(audit.summary(ledger), actors=True)
    assert "alice@\u200bbox" in md  # no @-mentions from ledger text
    evil = tmp_path / "evil.jsonl"
    put(evil, 1, [chk("a|b<script>alert(1)</script>`x`[l](http://e)", "passed")])
    md = audit.render_markdown(audit.summary(evil))
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "a\\|b" in md and "\\`x\\`" in md and "\\[l\\]" in md


def test_policy_require(ledger: Path) -> None:
    entries, chain = audit.load(ledger)
    ok = audit.check_policy(entries, chain, require=["det"], require_chain=True)
    assert ok.ok and [r.rule for r in ok.rules] == ["chain", "require det"]
    bad = audit.check_policy(entries, chain, require=["det", "chain", "nope"])
    assert [r.rule for r in bad.failed] == ["require chain", "require nope"]
    assert "latest result skipped" in bad.failed[0].detail
    with pytest.raises(PolicyViolation, match="2 audit rule"):
        bad.raise_if_failed()
    with pytest.raises(UsageError, match="no audit rules"):
        audit.check_policy(entries, chain)


def test_policy_scope_since_and_commit(ledger: Path) -> None:
    entries, chain = audit.load(ledger)
    since = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
    # det passed on day 1 and failed on day 2: at commit 2 it fails, at commit 1 it passes
    assert not audit.check_policy(entries, chain, require=["det"], commit=f"{2:040x}").ok
    assert audit.check_policy(entries, chain, require=["det"], commit=f"{1:040x}").ok
    late = audit.check_policy(
        entries, chain, require=["chain"], since=dt.datetime(2025, 3, 6, tzinfo=dt.UTC)
    )
    assert not late.ok and "no result for chain since 2025-03-06" in late.rules[0].detail
    assert audit.check_policy(entries, chain, require=["det"], since=since).ok


def test_policy_reproduced_is_bound_to_the_latest_drv(ledger: Path) -> None:
    entries, chain = audit.load(ledger)
    # det was reproduced for drv a1 (day 3) but its latest result is for drv a2
    r = audit.check_policy(entries, chain, require=["det"], require_reproduced=True)
    assert not r.ok and [x.rule for x in r.failed] == ["reproduced det"]
    assert DRV_A2 in r.failed[0].detail
    upto3 = [e for e in entries if e.seq <= 2]
    assert audit.check_policy(upto3, chain, require=["det"], require_reproduced=True).ok


def test_policy_chain_rule_on_tampered_ledger(ledger: Path) -> None:
    lines = ledger.read_bytes().splitlines()
    lines[1] = lines[1].replace(b'"result":"failed"', b'"result":"passed"', 1)
    ledger.write_bytes(b"".join(x + b"\n" for x in lines))
    entries, chain = audit.load(ledger)
    assert len(entries) == 1  # only the verified prefix is used
    r = audit.check_policy(entries, chain, require_chain=True)
    assert not r.ok and "BROKEN at line 2" in r.rules[0].detail


def test_parse_since() -> None:
    now = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
    assert audit.parse_since("7d", now) == dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
    assert audit.parse_since("2025-03-01") == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    with pytest.raises(UsageError, match="--since"):
        audit.parse_since("last tuesday")


def test_aggregate(tmp_path: Path, ledger: Path) -> None:
    repo2 = tmp_path / "repo2"
    other = repo2 / ".provenance" / "ledger.jsonl"
    put(other, 7, [chk("det", "passed", "reproduced", DRV_A2)], repo="https://x.invalid/two")
    s = audit.aggregate([ledger, repo2])  # a file and a repository directory
    assert s.runs == 7 and len(s.parts) == 2 and s.tiers["reproduced"] == 2
    assert s.repos == ("/src/repo", "https://x.invalid/two")
    assert [p.runs for p in s.parts] == [6, 1]
    md = audit.render_markdown(s)
    assert "| 7 |" in md and "valid |" in md
    page = report_html.render(s)
    assert 'id="ledgers"' in page and 'id="runs">7<' in page


def test_html_escapes_and_loads_nothing(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    put(
        p,
        1,
        [chk('"><script>alert(1)</script>', "passed")],
        actor=L.Actor(user="<img src=x onerror=alert(1)>", host="h"),
    )
    page = report_html.render(audit.summary(p))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page
    assert (
        "http://" not in page
        and "https://" not in page
        and "src=" not in page.replace("&lt;img src=x", "")
    )
    assert "default-src 'none'" in page


# -- CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_cli_verify_exit_codes(tmp_path: Path, ledger: Path) -> None:
    r = cli("audit", "verify", "--ledger", str(ledger), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["entries"] == 6
    lines = ledger.read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"user":"alice"', b'"user":"mallory"')
    ledger.write_bytes(b"".join(x + b"\n" for x in lines))
    r = cli("audit", "verify", "--ledger", str(ledger))
    assert r.exit_code == 1
    assert "chain broken at line 4" in r.stderr and "3 entries before it verify" in r.stderr
    r = cli("audit", "verify", "--ledger", str(tmp_path / "none.jsonl"))
    assert r.exit_code == 2 and "no ledger at" in r.stderr


def test_cli_check_exit_codes(ledger: Path) -> None:
    r = cli("audit", "check", "--ledger", str(ledger), "--require", "det", "--require-chain")
    assert r.exit_code == 0 and "PASS: require det" in r.stderr
    r = cli("audit", "check", "--ledger", str(ledger), "--require", "chain", "--json")
    assert r.exit_code == 1 and "FAIL: require chain" in r.stderr
    assert json.loads(r.stdout)["ok"] is False
    r = cli("audit", "check", "--ledger", str(ledger), "--require", "det", "--require-reproduced")
    assert r.exit_code == 1 and "FAIL: reproduced det" in r.stderr
    assert cli("audit", "check", "--ledger", str(ledger)).exit_code == 2
    r = cli("audit", "check", "--ledger", str(ledger), "--require", "det", "--since", "someday")
    assert r.exit_code == 2


def test_cli_summary_report_aggregate(tmp_path: Path, ledger: Path) -> None:
    r = cli("audit", "summary", "--ledger", str(ledger), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tiers"] == {
        "local": 2,
        "ci": 2,
        "reproduced": 1,
    }
    r = cli("audit", "summary", "--ledger", str(ledger))
    assert "pass rate 50.0%" in r.stdout
    assert cli("audit", "report", "--ledger", str(ledger)).exit_code == 2
    out = tmp_path / "out" / "audit.html"
    r = cli("audit", "report", "--ledger", str(ledger), "--html", str(out), "--markdown")
    assert r.exit_code == 0 and out.is_file() and "| 6 | 3 | 50.0%" in r.stdout
    assert "alice" not in r.stdout
    r = cli("audit", "report", "--ledger", str(ledger), "--markdown", "--actors")
    assert r.exit_code == 0 and "alice@\u200bbox" in r.stdout
    r = cli("audit", "aggregate", str(ledger), str(ledger), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["runs"] == 12
    r = cli("audit", "aggregate", str(tmp_path / "missing"))
    assert r.exit_code == 2


def test_dirty_builds_are_shown_and_never_count(tmp_path: Path) -> None:
    p = tmp_path / "ledger.jsonl"
    put(p, 1, [chk("det", "failed")])
    put(p, 2, [chk("det", "passed")], commit=f"{1:040x}", dirty=True)  # an uncommitted fix
    entries, chain = audit.load(p)
    assert entries[1].dirty is True and entries[0].dirty is None
    r = audit.check_policy(entries, chain, require=["det"], commit=f"{1:040x}")
    assert not r.ok and "latest result failed" in r.rules[0].detail
    only_dirty = audit.check_policy(entries[1:], chain, require=["det"])
    assert "only dirty-tree builds" in only_dirty.rules[0].detail
    s = audit.summarize(entries, "t", chain)
    (det,) = s.checks
    assert (det.passed, det.failed, det.dirty, det.last_result, s.dirty_runs) == (
        0,
        1,
        1,
        "failed",
        1,
    )
    assert s.pass_rate == 0.0 and len(s.points) == 1
    assert "1 build(s) of a dirty tree" in audit.render_text(s)
    assert "**dirty**" in audit.render_markdown(s)
    assert 'id="dirty-runs">1<' in report_html.render(s)


def test_a_repository_that_got_a_remote_is_one_repository(tmp_path: Path) -> None:
    p = tmp_path / "ledger.jsonl"
    url = "https://example.invalid/acme/widgets.git"
    put(p, 1, [chk("det", "passed")])  # an older entry: no repoPath, repo = its path
    put(p, 2, [chk("det", "passed")], repo_path="/src/repo")
    put(p, 3, [chk("det", "passed")], repo=url, repo_path="/src/repo")
    put(p, 4, [chk("det", "passed")], repo="/src/repo", actor=L.Actor(user="a", host="other"))
    s = audit.summary(p)
    assert s.repos == ("/src/repo", url)  # the same path on another host is another clone


class _Gated:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def test_ledger_records_of_gate_and_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    reused = _Gated(name="det", passed=True, drv_path=DRV_A1, trust_tiers=("local",))
    unproven = _Gated(name="chain", passed=False, drv_path=None, trust_tiers=())
    records = L.gate_checks(_Gated(checks=(reused, unproven)))
    assert [(r["result"], r["tier"]) for r in records] == [("reused", "local"), ("skipped", "ci")]
    assert L.highest_tier(records, "ci") == "local"
    attested = _Gated(check="det", status="PASSED", levels=("authentic",), drv_path=DRV_A1)
    broken = _Gated(check="chain", status="FAILED", levels=(), drv_path=None)
    lone = _Gated(check="lone", status="PASSED", levels=("authentic",), drv_path=None)
    report = _Gated(attestations=(attested, broken, lone), missing=("chain", "lone", "wrongkey"))
    assert [(r["name"], r["result"]) for r in L.verify_checks(report)] == [
        ("det", "passed"),
        ("chain", "failed"),
        ("lone", "unverified"),  # one signer of two: not proven, not failed
        ("wrongkey", "unverified"),
    ]
