"""Messages with real nix and git (issue 13): `build --json` on a failing check, check names
with spaces, non-ASCII and control characters, and verify's honest count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from tests.conftest import git, make_flake

pytestmark = pytest.mark.nix

EXTRA = """{ mk, tests }: {
  "unit tests" = mk "spaced-check" "echo spaced > $out" { };
  "café" = mk "accented-check" "echo accented > $out" { };
  "evil\\nskip=true" = mk "evil-check" "echo '1 failed'; exit 3" { };
}
"""


def cli(*args: str | Path) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, [str(a) for a in args])
    return done.exit_code, done.stdout, done.stderr


def test_check_names_with_spaces_and_non_ascii(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, _ = keypair
    repo = make_flake(tmp_path / "r", extra_checks=EXTRA)

    # --check reaches checks whose names are not Nix identifiers.
    code, out, err = cli("build", repo, "--key", key, "--check", "unit tests", "--check", "café",
                         "--json")  # fmt: skip
    assert code == 0, err
    assert {c["name"] for c in json.loads(out)["checks"]} == {"unit tests", "café"}


def test_json_on_a_failed_build_escaped_names_and_verify_count(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, pub = keypair
    repo = make_flake(tmp_path / "r", extra_checks=EXTRA)

    # A failing check under --json: exactly one object, the error and the per-check status.
    code, out, err = cli("build", repo, "--key", key, "--json")
    assert code == 1, err
    report = json.loads(out)  # one object: json.loads refuses trailing data
    assert report["error"]["exitCode"] == 1 and report["error"]["message"]
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["evil\nskip=true"] == "failed"  # JSON keeps the raw name
    assert status["unit tests"] == "attested"
    # ...but no human line is forged: the newline is shown escaped.
    assert not any(line.startswith("skip=true") for line in err.splitlines()), err
    assert "evil\\nskip=true" in err

    # verify counts what it verified, and says what it skipped.
    code, out, err = cli("verify", "--flake", repo, "--trusted-key", pub, "--check", "unit tests")
    assert code == 0, err
    verdict = err.strip().splitlines()[-1]
    # One verified; the other checks' lines were skipped, and are counted as such.
    assert re.match(r"verified: 1 attestation\(s\) verified, [1-9]\d* skipped, ", verdict), verdict


def test_cached_entries_in_build_json_carry_the_reused_log_and_tests(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    repo = make_flake(tmp_path / "r")
    code, out, err = cli("build", repo, "--key", key, "--json")
    assert code == 0, err
    first = {c["name"]: c for c in json.loads(out)["checks"]}
    assert first["det"]["logSha256"] and first["det"]["status"] == "attested"
    # A README-only commit: every check is a cache hit on the ancestor.
    (repo / "README.md").write_text("docs only\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-qm", "docs")
    code, out, err = cli("build", repo, "--key", key, "--json")
    assert code == 0, err
    again = {c["name"]: c for c in json.loads(out)["checks"]}
    for name, was in first.items():
        assert again[name]["status"] == "cached" and again[name]["reusedFrom"]
        assert again[name]["logSha256"] == was["logSha256"], name
        assert again[name].get("tests") == was.get("tests"), name
    assert again["det"].get("tests"), "the fixture's det check reports test counts"
