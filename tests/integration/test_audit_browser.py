"""The HTML audit report in a real headless browser: it renders the ledger's numbers.

Skips only on a machine without chromium and without CI=true; under CI a missing browser
fails (scripts/install-test-deps.sh installs Debian's chromium).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from provenance.audit import html as report_html
from provenance.audit import ledger as L
from provenance.audit import summary as audit

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser() -> str:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but chromium is missing: run scripts/install-test-deps.sh")
        pytest.skip("chromium is not installed")
    return BROWSER


def _chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def _commit(day: int) -> str:
    return f"{day:02x}" * 20  # distinct in the 12 characters the page shows


def _ledger(path: Path) -> None:
    """12 builds of main over 12 days: det fails on days 4 and 9; 3 results reproduced.

    Then: three cache hits on main (days 3, 7, 12: everything was already attested), a
    gate from CI, a failing build on a feature branch, and bob's reproducing verify of
    main's newest commit.
    """
    for day in range(1, 13):
        det = "failed" if day in {4, 9} else "passed"
        tier = "reproduced" if day in {2, 6, 11} else ("ci" if day % 2 == 0 else "local")
        checks = (
            L.CheckRecord(
                name="det", drv_path=f"/nix/store/{day:032d}-det.drv", result=det, tier=tier
            ),
            L.CheckRecord(name="chain", result="passed", tier=tier),
        )
        L.append(
            path,
            L.Draft(
                time=f"2025-04-{day:02d}T09:{day:02d}:00.000Z",
                command="build",
                ok=det == "passed",
                actor=L.Actor(user="alice", host="build-01", keyid="ab" * 32),
                branch="main",
                repo="https://example.invalid/acme/widgets.git",
                commit=_commit(day),
                checks=checks,
                tier=L.highest_tier(checks, "local"),
                duration_ms=800 + 350 * day,
            ),
        )
        if day in {3, 7, 12}:
            cached = tuple(
                L.CheckRecord(name=n, result="cached", tier=tier) for n in ("det", "chain")
            )
            L.append(
                path,
                L.Draft(
                    time=f"2025-04-{day:02d}T09:30:00.000Z",
                    command="build",
                    ok=True,
                    actor=L.Actor(user="alice", host="build-01", keyid="ab" * 32),
                    branch="main",
                    repo="https://example.invalid/acme/widgets.git",
                    commit=_commit(day),
                    checks=cached,
                    tier=tier,
                    duration_ms=150 + day,
                ),
            )
    # one gate run from CI, and hostile strings that must stay text
    L.append(
        path,
        L.Draft(
            time="2025-04-12T10:00:00.000Z",
            command="gate",
            ok=True,
            actor=L.Actor(user="<b>ci</b>", host="runner"),
            branch="<script>x</script>",
            repo="r",
            commit="f" * 40,
            checks=(L.CheckRecord(name="det", result="reused", tier="ci"),),
            tier="ci",
        ),
    )
    bob = L.Actor(user="bob", host="laptop", keyid="cd" * 32)
    feature = (
        L.CheckRecord(name="det", result="failed", tier="local"),
        L.CheckRecord(name="chain", result="passed", tier="local"),
    )
    L.append(
        path,
        L.Draft(
            time="2025-04-12T11:00:00.000Z", command="build", ok=False, actor=bob,
            branch="feature/x", repo="r", commit="e" * 40, checks=feature, tier="local",
            duration_ms=2000,
        ),
    )  # fmt: skip
    reproduced = tuple(
        L.CheckRecord(name=n, result="passed", tier="reproduced") for n in ("det", "chain")
    )
    L.append(
        path,
        L.Draft(
            time="2025-04-12T12:00:00.000Z", command="verify", ok=True, actor=bob,
            branch="main", repo="r", commit=_commit(12), checks=reproduced, tier="reproduced",
        ),
    )  # fmt: skip


def test_report_renders_ledger_numbers(browser: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    _ledger(ledger)
    s = audit.summary(ledger)
    page = tmp_path / "audit.html"
    page.write_text(report_html.render(s))

    done = _chromium(browser, tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout

    def card(cid: str) -> str:
        m = re.search(rf'id="{cid}">([^<]*)<', dom)
        assert m, f"no #{cid} in the rendered DOM"
        return html.unescape(m.group(1))

    assert card("runs") == str(s.runs) == "18"
    assert card("ok-runs") == "15"
    # 25 of 28 decided results were built or verified in their run and passed; cache hits
    # and the gate's reuse repeat a pass, not counted again
    assert card("pass-rate") == audit.pct(s.pass_rate) == "89.3%"
    assert card("results") == "35"
    assert (card("tier-local"), card("tier-ci"), card("tier-reproduced")) == ("14", "10", "8")
    # both plots drew one point per run that has data, as inline SVG (cache hits and the
    # gate have no pass rate of their own); the duration plot keeps the 3 cache hits
    # (150 ms: nothing built) apart from the 13 real builds
    assert re.search(r'id="plot-pass-rate".*?data-points="14"', dom, re.S)
    duration = re.search(r'id="plot-duration"(.*?)</svg>', dom, re.S)
    assert duration
    plot = duration.group(1)
    assert 'data-points="16"' in plot and 'data-builds="13"' in plot
    assert 'data-cache-hits="3"' in plot
    assert plot.count('<circle class="series-cache-hits"') == 3
    assert plot.count('<circle class="series-builds"') == 13
    assert "cache hits (3)" in plot and "builds (13)" in plot
    assert dom.count("<circle") == 30
    # the per-check table shows det passing 11 of 14 (10 builds of main and bob's verify)
    row = re.search(r'<tr data-check="det">(.*?)</tr>', dom, re.S)
    assert row and "78.6%" in row.group(1)
    # Is main proven, and by whom? Its newest commit, built by alice, reproduced by bob.
    banner = re.search(r'id="main-proven">(.*?)</div>', dom, re.S)
    assert banner, "no answer to 'is main proven?'"
    text = html.unescape(re.sub(r"<[^>]+>", "", banner.group(1)))
    assert text.startswith(f"main at {_commit(12)[:12]} is proven (2 of 2 check(s))")
    assert "alice@build-01 key abababababab (build, ci)" in text
    assert "bob@laptop key cdcdcdcdcdcd (verify, reproduced)" in text
    branches = re.findall(r'<tr data-branch="([^"]*)">(.*?)</tr>', dom, re.S)
    assert [html.unescape(b) for b, _ in branches] == ["main", "<script>x</script>", "feature/x"]
    feature_row = branches[2][1]
    assert "not proven" in feature_row and "e" * 12 in feature_row
    assert "nobody (gate only)" in branches[1][1]
    # per commit: day 12 was built once and hit the cache once; day 4 is not proven
    day12 = re.search(rf'<tr data-commit="{_commit(12)}">(.*?)</tr>', dom, re.S)
    assert day12 and re.search(r'<td class="n">1</td><td class="n">1</td>', day12.group(1))
    day4 = re.search(rf'<tr data-commit="{_commit(4)}">(.*?)</tr>', dom, re.S)
    assert day4 and "not proven" in day4.group(1)
    assert len(re.findall(r"<tr data-commit=", dom)) == 14
    # hostile ledger text arrived as text, not markup
    assert "&lt;b&gt;ci&lt;/b&gt;@runner" in dom and "<b>ci</b>" not in dom
    assert "&lt;script&gt;x&lt;/script&gt;" in dom and "<script>" not in dom

    shot = tmp_path / "audit.png"
    done = _chromium(
        browser,
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,900",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert done.returncode == 0 and shot.stat().st_size > 10_000
    if os.environ.get("PROVENANCE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["PROVENANCE_KEEP_SCREENSHOT"])
