"""The README's first command: `provenance example`, end to end on real nix and git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app

pytestmark = pytest.mark.nix


def test_example_attests_and_shows_what_was_proven(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["example", "--workdir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "4 passed, 0 failed" in err  # the example's own test suite ran in the sandbox
    assert "What this proves:" in err
    assert "test results: PASSED (signed, pinned to the same derivation)" in err
    assert "(re-hashed: match)" in err and "MISMATCH" not in err
    summary = json.loads(result.stdout)
    assert summary["noteAttached"] is True
    assert [c["status"] for c in summary["checks"]] == ["attested"]
    assert Path(summary["bundle"]).is_file() and Path(summary["publicKey"]).is_file()


def test_example_refuses_a_non_empty_workdir(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "keep.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["example", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (tmp_path / "project" / "keep.txt").read_text() == "mine\n"
