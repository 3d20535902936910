"""Helpers for the bench scripts: timing whole commands and printing a table."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence

NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]
NIX_CONFIG = "\n".join(
    [
        "experimental-features = nix-command flakes",
        "sandbox = true",
        "sandbox-fallback = false",
        "substituters =",
        "use-registries = false",
    ]
)


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NIX_CONFIG", NIX_CONFIG)
    env.setdefault("GIT_AUTHOR_NAME", "bench")
    env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "bench")
    env.setdefault("GIT_COMMITTER_EMAIL", "bench@example.invalid")
    return env


def time_cmd(cmd: Sequence[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall-clock seconds of `runs` executions; raises if the command fails."""
    out: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env or bench_env(), check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def time_interleaved(
    cmds: Sequence[Sequence[str]], runs: int, env: dict[str, str] | None = None
) -> list[list[float]]:
    """Like `time_cmd` for several commands, alternating them run by run, so that a
    machine whose load drifts during the benchmark slows every side alike."""
    samples: list[list[float]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            samples[i] += time_cmd(cmd, 1, env)
    return samples


def row(label: str, samples: list[float]) -> tuple[str, float]:
    med = statistics.median(samples)
    print(f"| {label} | {med * 1000:.0f} | {min(samples) * 1000:.0f}-{max(samples) * 1000:.0f} |")
    return label, med


def header(title: str) -> None:
    print(f"\n### {title}\n\n| command | median ms | range ms |\n|---|---|---|")
