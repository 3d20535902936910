"""Benchmark: what the gate's decision costs next to the work it cannot avoid.

For an attested commit, the gate must evaluate the checks to drvPaths (one `nix eval`) and
read the notes; everything else (git calls, signature checks, parsing) is overhead. The
target (issue 6): gate decision <= 2x (`nix eval` of the same checks + `git notes show`).

Measured side by side on one fixture repo, medians of N runs:
  baseline   nix eval (the gate's own call, via Nix.check_drv_paths) + git notes show
  gate-api   provenance.ci.gate.gate(): the decision, in process (no remote)
  gate-api+fetch  the same with a local bare remote to fetch the notes from
  gate-reuse the decision 10 README-only commits after the attested one (walks history)
  gate-cli   `python -m provenance gate` end to end (interpreter start and imports too)

Run: `. scripts/env.sh; .venv/bin/python bench/bench_gate.py [N]`
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provenance.attest import pipeline as attest  # noqa: E402
from provenance.ci.gate import GateRequest, gate  # noqa: E402
from provenance.doors.nix import Nix, current_system  # noqa: E402
from provenance.formats import keys  # noqa: E402
from provenance.policy.trust import from_key_files  # noqa: E402
from tests.conftest import NIX_CONFIG, make_flake  # noqa: E402


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _median_ms(fn: Callable[[], object], n: int) -> float:
    fn()  # warm: first eval of a new commit writes .drv files and fills the eval cache
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    os.environ.setdefault("NIX_CONFIG", NIX_CONFIG)
    for var, val in (
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "b@example.invalid"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "b@example.invalid"),
    ):
        os.environ.setdefault(var, val)
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp_s:
        tmp = Path(tmp_s)
        repo = make_flake(tmp / "repo")
        key, pub, _ = keys.generate(tmp / "keys")
        nix = Nix()
        attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), nix)
        commit = _git(repo, "rev-parse", "HEAD")
        policy = from_key_files([pub])
        ref = f"git+file://{repo}?rev={commit}"
        system = current_system()

        def baseline() -> None:
            nix.check_drv_paths(ref, system, None)
            _git(repo, "notes", "--ref", "provenance", "show", commit)

        def decide(r: Path = repo) -> None:
            report = gate(GateRequest(flake_dir=r, policy=policy), nix)
            assert report.skip, report.reason

        rows = [("baseline: nix eval + git notes show", _median_ms(baseline, n))]
        rows.append(("gate decision (API, no remote)", _median_ms(decide, n)))

        bare = tmp / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
        subprocess.run(
            ["git", "-C", str(repo), "push", "-q", str(bare), "refs/notes/provenance"], check=True
        )
        clone = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
        rows.append(
            ("gate decision (API, fetch from local remote)", _median_ms(lambda: decide(clone), n))
        )

        for i in range(10):
            (repo / "README.md").write_text(f"revision {i}\n")
            _git(repo, "add", "README.md")
            _git(repo, "commit", "-q", "-m", f"docs {i}")
        rows.append(("gate decision, 10 README commits later (reuse)", _median_ms(decide, n)))
        cli = [sys.executable, "-m", "provenance", "gate", str(repo), "--trusted-key", str(pub)]
        rows.append(
            (
                "gate CLI end to end (python -m provenance)",
                _median_ms(lambda: subprocess.run(cli, check=True, capture_output=True), n),
            )
        )

    base = rows[0][1]
    print(f"{'what':<50} {'median ms':>10} {'x baseline':>11}")
    for what, ms in rows:
        print(f"{what:<50} {ms:>10.1f} {ms / base:>11.2f}")
    print(f"(N={n}; {os.cpu_count()} cores; {nix.version()}; the target is <= 2.00x for the API)")


if __name__ == "__main__":
    main()
