"""A repository for the --base tests (test_review, test_show): `main` defines three checks
(det and chain of the fixture flake, and `suite`, whose TAP report lists its three tests
by id), trusts alice and bob to build and carol to review, and is attested by alice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provenance.attest import pipeline as attest
from provenance.doors.nix import Nix
from provenance.formats import keys
from tests.conftest import git, isolate, make_flake

SUITE_CHECK = (
    '{ mk, tests }: { suite = mk "suite-check" "busybox sh $src/suite.sh" { src = tests; }; }\n'
)
TESTS = ("test_add", "test_mul", "test_sub")


def suite_script(*lines: str) -> str:
    """tests/suite.sh: writes a TAP report of these result lines to $out/results.tap."""
    body = "\\n".join([f"1..{len(lines)}", *lines])
    return f"busybox mkdir -p $out\nbusybox printf '{body}\\n' > $out/results.tap\n"


FULL = suite_script(*(f"ok {i} - {t}" for i, t in enumerate(TESTS, 1)))


@dataclass(frozen=True)
class Keys:
    alice: Path  # build key (trusted)
    bob: Path  # second build key (trusted)
    carol: Path  # reviewer key
    dir: Path

    def pub(self, who: str) -> Path:
        return self.dir / who / "provenance.pub"


def build_base_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Keys]]:
    root = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp)
        ks = {}
        for who in ("alice", "bob", "carol"):
            ks[who] = keys.generate(root / "keys" / who)[0]
        k = Keys(ks["alice"], ks["bob"], ks["carol"], root / "keys")
        repo = make_flake(root / "repo", extra_checks=SUITE_CHECK, commit=False)
        (repo / "tests" / "suite.sh").write_text(FULL)
        policy = str(repo / "provenance.toml")
        for name, role in (("alice", ()), ("bob", ()), ("carol", ("--reviewer",))):
            done = cli("trust", "add", name, str(k.pub(name)), *role, "--policy", policy)
            assert done.returncode == 0, done.stderr
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "base")
        git(repo, "branch", "-M", "main")
        attest_with(repo, k.alice)
        yield repo, k


def copy_repo(base_repo: tuple[Path, Keys], tmp_path: Path) -> tuple[Path, Keys]:
    src, k = base_repo
    dest = tmp_path / "repo"
    shutil.copytree(src, dest, symlinks=True)
    git(dest, "checkout", "-q", "-b", "change")
    return dest, k


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def attest_with(repo: Path, key: Path) -> attest.BuildReport:
    return attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    for name, text in files.items():
        if text is None:
            (repo / name).unlink()
        else:
            (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Gate:
    skip: bool
    reason: str
    summary: str
    report: dict[str, Any]
    stderr: str


def gate(repo: Path, tmp_path: Path, *extra: str) -> Gate:
    out, summary = tmp_path / "gh-output", tmp_path / "gh-summary"
    out.write_text("")
    summary.write_text("")
    done = cli(
        "gate",
        str(repo),
        "--policy-ref",
        "refs/heads/main",
        "--base",
        "refs/heads/main",
        "--json",
        *extra,
        env={"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert done.returncode == 0, done.stderr
    pairs = dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)
    return Gate(
        pairs["skip"] == "true",
        pairs["reason"],
        summary.read_text(),
        json.loads(done.stdout),
        done.stderr,
    )


def approve(repo: Path, key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "approve", "--flake", str(repo), "--key", str(key), "--base", "refs/heads/main", *extra
    )
