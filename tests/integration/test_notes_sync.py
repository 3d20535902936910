"""Notes sync between machines: two clones attest the same commit with different keys and
push to one bare remote; nobody's lines are lost. Real git, real nix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provenance.attest import pipeline as attest
from provenance.ci.gate import GateRequest, gate
from provenance.doors import notes
from provenance.doors.git import NOTES_REF, Git
from provenance.doors.nix import Nix
from provenance.formats import dsse, intoto, keys
from provenance.formats.intoto import TEST_RESULT_V01, ResourceDescriptor, Statement
from provenance.policy.trust import from_key_files
from tests.conftest import git, make_flake, run

pytestmark = pytest.mark.nix


def _note_lines(repo: Path, rev: str = "HEAD") -> set[str]:
    text = git(repo, "notes", "--ref", "provenance", "show", rev)
    return {ln for ln in text.splitlines() if ln.strip()}


@pytest.fixture
def two_clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    origin = make_flake(tmp_path / "origin")
    bare = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(origin), str(bare)])
    a, b = tmp_path / "a", tmp_path / "b"
    run(["git", "clone", "-q", str(bare), str(a)])
    run(["git", "clone", "-q", str(bare), str(b)])
    return bare, a, b


def _attest(repo: Path, key: Path) -> set[str]:
    attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())
    return _note_lines(repo)


def test_concurrent_attestations_union_on_the_remote(
    two_clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bare, a, b = two_clones
    key_a, _, _ = keys.generate(tmp_path / "ka")
    key_b, _, _ = keys.generate(tmp_path / "kb")
    lines_a = _attest(a, key_a)
    lines_b = _attest(b, key_b)
    # det and chain provenance, plus det's test result, per clone
    assert len(lines_a) == 3 and len(lines_b) == 3 and not lines_a & lines_b

    first = notes.push(Git(a), "origin")
    assert first.found and first.attempts == 1
    # b's notes ref does not descend from a's: push fetches and unions a's lines first.
    second = notes.push(Git(b), "origin")
    assert second.found and second.attempts == 1  # fetch+merge happens before each push
    assert _note_lines(bare) == lines_a | lines_b

    # a fetches and sees b's lines too; its own are intact.
    fetched = notes.fetch(Git(a), "origin")
    assert fetched.found
    assert _note_lines(a) == lines_a | lines_b
    # A second fetch changes nothing (idempotent union).
    notes.fetch(Git(a), "origin")
    assert _note_lines(a) == lines_a | lines_b


def test_push_retries_when_the_remote_moved_meanwhile(
    two_clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bare, a, b = two_clones
    git(a, "notes", "--ref", "provenance", "add", "-m", "from-a", "HEAD")
    git(b, "notes", "--ref", "provenance", "add", "-m", "from-b", "HEAD")
    notes.push(Git(a), "origin")

    # Simulate a racing machine: b's first push attempt goes out without merging.
    gb = Git(b)
    assert gb.push_notes("origin") is False  # rejected: not a fast-forward
    result = notes.push(gb, "origin")
    assert result.found
    assert _note_lines(bare) == {"from-a", "from-b"}


def test_cli_notes_push_and_fetch(two_clones: tuple[Path, Path, Path]) -> None:
    bare, a, b = two_clones
    git(a, "notes", "--ref", "provenance", "add", "-m", "line-1", "HEAD")
    prov = [sys.executable, "-m", "provenance", "notes"]
    done = subprocess.run(
        [*prov, "push", "-C", str(a)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pushed to origin" in done.stderr
    done = subprocess.run(
        [*prov, "fetch", "-C", str(b)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _note_lines(b) == {"line-1"}
    assert Git(b).ref_exists(notes.remote_ref("origin"))
    # Pushing from a repo with no notes anywhere is not an error.
    fresh = bare.parent / "fresh"
    run(["git", "clone", "-q", str(bare), str(fresh)])
    git(bare, "update-ref", "-d", NOTES_REF)
    done = subprocess.run(
        [*prov, "push", "-C", str(fresh)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "nothing to push" in done.stderr
    # A remote that does not exist: one line, exit 4 (environment), no traceback.
    done = subprocess.run(
        [*prov, "fetch", "nowhere", "-C", str(a)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 4
    assert done.stderr.startswith("error: git fetch nowhere failed")


def test_gate_fetches_notes_from_the_remote(
    two_clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bare, a, b = two_clones
    key, pub, _ = keys.generate(tmp_path / "k")
    _attest(a, key)
    notes.push(Git(a), "origin")
    report = gate(GateRequest(flake_dir=b, policy=from_key_files([pub])), Nix())
    assert report.skip, report.reason
    assert report.notes == "fetched from origin"
    # An unreachable remote: reported, and the notes we already have still decide.
    git(b, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    report = gate(GateRequest(flake_dir=b, policy=from_key_files([pub])), Nix())
    assert report.skip, report.reason
    assert report.notes == "local notes (fetch failed)"
    assert report.warnings and "fetching notes from origin failed" in report.warnings[0]
    # Without the notes (a fresh clone and a dead remote), the gate says run.
    c = tmp_path / "c"
    run(["git", "clone", "-q", str(bare), str(c)])
    git(c, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    report = gate(GateRequest(flake_dir=c, policy=from_key_files([pub])), Nix())
    assert not report.skip
    assert "no attestation notes" in report.reason


def test_gate_keeps_a_failed_result_the_remote_dropped(
    two_clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """b holds a trusted FAILED test-result for det; the remote is rewritten without it.
    The gate's own fetch must not delete it here, so CI runs (it used to fast-forward the
    line away and skip)."""
    bare, a, b = two_clones
    key, pub, _ = keys.generate(tmp_path / "k")
    report = attest.build(attest.BuildRequest(flake_dir=a, signer=keys.load_signer(key)), Nix())
    notes.push(Git(a), "origin")
    det = next(c for c in report.checks if c.name == "det")
    failed = Statement(
        subject=[
            ResourceDescriptor(name=p["path"], digest={"sha256": p["sha256"]})
            for p in det.outputs.values()
        ],
        predicate_type=TEST_RESULT_V01,
        predicate=intoto.TestResult(
            result="FAILED", configuration=[ResourceDescriptor(name=det.drv_path)]
        ).as_predicate(),
    )
    line = dsse.sign(failed.dump_bytes(), [keys.load_signer(key)]).to_json()
    notes.fetch(Git(b), "origin")
    Git(b).add_note_lines("HEAD", [line])
    notes.push(Git(b), "origin")
    policy = from_key_files([pub])
    assert not gate(GateRequest(flake_dir=b, policy=policy), Nix()).skip

    # Someone rewrites the remote's notes without the FAILED line (a descendant commit).
    c = tmp_path / "c"
    run(["git", "clone", "-q", str(bare), str(c)])
    notes.fetch(Git(c), "origin")
    kept = [ln for ln in _note_lines(c) if ln != line]
    git(c, "notes", "--ref", "provenance", "add", "-f", "-m", "\n".join(kept), "HEAD")
    git(c, "push", "-q", "origin", f"{NOTES_REF}:{NOTES_REF}")
    assert line not in _note_lines(bare)

    report_b = gate(GateRequest(flake_dir=b, policy=policy), Nix())
    assert report_b.notes == "fetched from origin"
    assert line in _note_lines(b)
    assert not report_b.skip
    assert "det: a trusted key attested it FAILED" in report_b.reason


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_notes_move_to_and_from_a_url_or_a_path(
    two_clones: tuple[Path, Path, Path], as_url: bool
) -> None:
    # `--help` says "Remote name or URL": a URL or a path is not a ref component, so the
    # tracking ref is named by its digest (it failed with "invalid refspec").
    bare, a, b = two_clones
    where = f"file://{bare}" if as_url else str(bare)
    git(a, "notes", "--ref", "provenance", "add", "-m", "by-url", "HEAD")
    prov = [sys.executable, "-m", "provenance", "notes"]
    done = subprocess.run(
        [*prov, "push", where, "-C", str(a)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _note_lines(bare) == {"by-url"}
    done = subprocess.run(
        [*prov, "fetch", where, "-C", str(b)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _note_lines(b) == {"by-url"}
    tracking = notes.remote_ref(where)
    assert tracking.startswith("refs/notes/remotes/url-") and Git(b).ref_exists(tracking)
    assert notes.remote_ref("origin") == "refs/notes/remotes/origin/provenance"


def test_notes_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    # docs/cli.md: exit 2 for bad input; it was 4 (an "environment" failure).
    for sub in ("fetch", "push"):
        done = subprocess.run(
            [sys.executable, "-m", "provenance", "notes", sub, "-C", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, (sub, done.stderr)
        assert "is not inside a git repository" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_git_error_says_what_git_said_not_its_last_advice(
    two_clones: tuple[Path, Path, Path],
) -> None:
    _, a, _ = two_clones
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "provenance",
            "notes",
            "fetch",
            str(a.parent / "missing.git"),
            "-C",
            str(a),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 4
    line = done.stderr.splitlines()[0]
    assert "does not appear to be a git repository" in line, line
    assert not line.endswith("and the repository exists.")
