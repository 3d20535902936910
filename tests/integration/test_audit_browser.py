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


def _ledger(path: Path) -> None:
    """12 builds over 12 days: det fails on days 4 and 9; 3 results reproduced."""
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
                repo="https://example.invalid/acme/widgets.git",
                commit=f"{day:040x}",
                checks=checks,
                tier=L.highest_tier(checks, "local"),
                duration_ms=800 + 350 * day,
            ),
        )
    # one gate run from CI, and a hostile string that must stay text
    L.append(
        path,
        L.Draft(
            time="2025-04-12T10:00:00.000Z",
            command="gate",
            ok=True,
            actor=L.Actor(user="<b>ci</b>", host="runner"),
            repo="r",
            commit="f" * 40,
            checks=(L.CheckRecord(name="det", result="reused", tier="ci"),),
            tier="ci",
        ),
    )


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

    assert card("runs") == str(s.runs) == "13"
    assert card("ok-runs") == "11"
    # 22 of 24 build results passed; the gate's reuse repeats a pass, not counted again
    assert card("pass-rate") == audit.pct(s.pass_rate) == "91.7%"
    assert card("results") == "25"
    assert (card("tier-local"), card("tier-ci"), card("tier-reproduced")) == ("9", "8", "6")
    # both plots drew one point per run that has data, as inline SVG (the gate run has
    # no pass rate of its own: it only reused)
    assert re.search(r'id="plot-pass-rate".*?data-points="12"', dom, re.S)
    assert re.search(r'id="plot-duration".*?data-points="12"', dom, re.S)
    assert dom.count("<circle") == 24
    # the per-check table shows det passing 10 of 12 builds
    row = re.search(r'<tr data-check="det">(.*?)</tr>', dom, re.S)
    assert row and "83.3%" in row.group(1)
    # hostile ledger text arrived as text, not markup
    assert "&lt;b&gt;ci&lt;/b&gt;@runner" in dom and "<b>ci</b>" not in dom

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
