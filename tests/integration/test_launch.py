"""The entry point starts the hot command's `nix eval` while Python imports the CLI
(launch.py), and the command adopts it only if it is the very eval it would have run.

Through the real `python -m provenance` and real nix, with a wrapper that logs each nix
process's pid and argv: the eval is started once and adopted (the decision the same as
without it); an eval the command does not want (a dirty tree's, a usage error) is never
what the statement or the verdict says, and is killed rather than left running.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provenance.doors.nix import current_system
from tests.conftest import make_flake, nix, run

pytestmark = pytest.mark.nix
ROOT = Path(__file__).resolve().parent.parent.parent


def _wrapper(tmp: Path) -> tuple[Path, Path]:
    """A `nix` that logs `pid argv...` (one line per process), then becomes the real nix."""
    real = run(["sh", "-c", "command -v nix"]).stdout.strip()
    log, wrapper = tmp / "nix-calls.log", tmp / "bin" / "nix"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(
        "#!/bin/sh\n"  # one line per process: the --apply expression spans lines
        f"line=\"$$ $(printf '%s ' \"$@\" | tr '\\n' ' ')\"\n"
        f"{{ flock 9; echo \"$line\" >&9; }} 9>> '{log}'\n"
        f"exec '{real}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper, log


def _provenance(*args: str | Path, nix_bin: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVENANCE_NIX": str(nix_bin), "PYTHONPATH": str(ROOT), **extra}
    return subprocess.run(
        [sys.executable, "-m", "provenance", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _evals(log: Path) -> list[tuple[int, str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(p), rest) for p, rest in (ln.split(" ", 1) for ln in lines) if " eval " in rest]


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
                time.sleep(0.02)
                continue
        except FileNotFoundError:
            pass
        return True
    return False


def test_gate_adopts_the_eval_started_ahead(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, pub = keypair
    repo = make_flake(tmp_path / "repo")
    wrapper, log = _wrapper(tmp_path)
    built = _provenance("build", repo, "--key", key, "--check", "det", "-q", nix_bin=wrapper)
    assert built.returncode == 0, built.stderr
    log.write_text("")
    gate = _provenance(
        "gate", repo, "--trusted-key", pub, "--require", "det", "-v", nix_bin=wrapper
    )
    assert gate.returncode == 0, gate.stderr
    assert "skip=true" in gate.stderr
    assert "adopted the process started ahead" in gate.stderr
    assert len(_evals(log)) == 1  # started once, before the CLI was imported, and used
    log.write_text("")
    plain = _provenance(
        "gate", repo, "--trusted-key", pub, "--require", "det", nix_bin=wrapper,
        PROVENANCE_NO_AHEAD="1",
    )  # fmt: skip
    assert plain.stderr.splitlines()[0] == gate.stderr.splitlines()[-3]  # the same decision
    assert len(_evals(log)) == 1


def test_a_dirty_build_signs_the_work_trees_drvpath_not_the_guessed_commits(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    repo = make_flake(tmp_path / "repo")
    system = current_system()
    committed = nix("eval", "--raw", f"git+file://{repo}#checks.{system}.det.drvPath")
    flake = repo / "flake.nix"
    flake.write_text(flake.read_text().replace("running tests from", "running the tests from"))
    wrapper, log = _wrapper(tmp_path)
    done = _provenance(
        "build", repo, "--key", key, "--check", "det", "--allow-dirty", "-q", "--no-note",
        nix_bin=wrapper,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dirty = nix("eval", "--impure", "--raw", f"{repo}#checks.{system}.det.drvPath")
    assert dirty != committed
    (bundle,) = (repo / ".provenance").glob("*.intoto.jsonl")
    drvs = set()
    for ln in bundle.read_text().splitlines():
        stmt = json.loads(base64.b64decode(json.loads(ln)["payload"]))
        params = stmt["predicate"].get("buildDefinition", {}).get("externalParameters", {})
        if "drvPath" in params:
            drvs.add(params["drvPath"])
    assert drvs == {dirty}
    evals = _evals(log)
    assert len(evals) == 2  # the guess (the commit, pinned) and the work tree's own
    assert "?rev=" in evals[0][1]
    assert _gone(evals[0][0])


def test_a_refused_command_leaves_no_nix_running(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "repo")
    wrapper, log = _wrapper(tmp_path)
    done = _provenance("gate", repo, nix_bin=wrapper)  # no trust given: usage error, exit 2
    assert done.returncode == 2, done.stderr
    assert "no trust given" in done.stderr
    for pid, _ in _evals(log):  # started ahead, never adopted: killed at exit
        assert _gone(pid)


def test_a_forced_build_adopts_the_eval_and_the_version(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, _ = keypair
    repo = make_flake(tmp_path / "repo")
    wrapper, log = _wrapper(tmp_path)
    args = ("build", repo, "--key", key, "--check", "det", "--force", "-v")
    done = _provenance(*args, nix_bin=wrapper)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("adopted the process started ahead") == 2
    lines = log.read_text().splitlines()
    assert sum(ln.rstrip().endswith(" --version") for ln in lines) == 1
    assert len(_evals(log)) == 1
