"""Ledger benchmarks: verify a 100,000-entry chain, append throughput, SIGKILL trials.

Run: `.venv/bin/python bench/bench_ledger.py [--entries 100000]`. Prints one line per
figure; nothing is asserted (the tests assert correctness, this measures speed).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance.audit import html as report_html
from provenance.audit import ledger as L
from provenance.audit import summary as audit

FORK = multiprocessing.get_context("fork")


def draft(i: int) -> L.Draft:
    checks = (
        L.CheckRecord(
            name="det",
            drv_path=f"/nix/store/{i:032x}-det-check.drv",
            result="failed" if i % 17 == 0 else "passed",
            tier=("local", "ci", "reproduced")[i % 3],
        ),
        L.CheckRecord(
            name="chain",
            drv_path=f"/nix/store/{i + 1:032x}-chain-check.drv",
            result="cached",
            tier="ci",
        ),
    )
    return L.Draft(
        time=f"2025-{1 + i // 500_000 % 12:02d}-01T00:00:00.000Z",
        command="build",
        ok=i % 17 != 0,
        actor=L.Actor(keyid="ab" * 32, user="alice", host="build-01"),
        repo="https://example.invalid/acme/widgets.git",
        commit=f"{i:040x}",
        checks=checks,
        bundles=(
            L.BundleRecord(
                path=f"/src/.provenance/{i:040x}.intoto.jsonl", sha256=f"{i:064x}", role="written"
            ),
        ),
        tier=L.highest_tier(checks, "local"),
        duration_ms=1000 + i % 5000,
    )


def generate(path: Path, n: int) -> None:
    """Write n chained entries directly (what n appends would write, minus the fsyncs)."""
    prev = L.GENESIS
    with path.open("wb") as f:
        for i in range(n):
            line = L.canonical(L.Entry(**draft(i).model_dump(), seq=i, prev=prev, v=1).wire())
            prev = L.entry_hash(line)
            f.write(line + b"\n")


def timed(fn: object, repeat: int = 3) -> str:
    """Best wall and CPU time of `repeat` runs (CPU time is robust on a busy machine)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return f"{wall:.2f} s wall, {cpu:.2f} s CPU (best of {repeat})"


def _worker(path: str, n: int) -> None:
    for i in range(n):
        L.append(Path(path), draft(i))


def _appender(path: str, torn: bool) -> None:
    if torn:
        real = os.write

        def torn_write(fd: int, data: bytes) -> int:
            half = len(data) // 2
            n = real(fd, data[:half])
            time.sleep(0.002)
            return n + real(fd, data[half:])

        L.os.write = torn_write  # type: ignore[attr-defined]
    i = 0
    while True:
        L.append(Path(path), draft(i))
        i += 1


def kill_trials(tmp: Path, trials: int, torn: bool, rng: random.Random) -> tuple[int, int]:
    """(trials whose chain verified and whose tail the next append repaired, partial tails)."""
    good = partial = 0
    for t in range(trials):
        p = tmp / f"kill-{torn}-{t}.jsonl"
        child = FORK.Process(target=_appender, args=(str(p), torn))
        child.start()
        time.sleep(rng.uniform(0.005, 0.06))
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join()
        r = L.verify_chain(p) if p.exists() else None
        if r is None:
            good += 1
            continue
        done = L.append(p, draft(0))
        r2 = L.verify_chain(p)
        partial += r.partial_tail > 0
        good += (
            r.ok and done.repaired_bytes == r.partial_tail and r2.ok and r2.entries == r.entries + 1
        )
    return good, partial


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        big = tmp / "big.jsonl"
        t = time.perf_counter()
        generate(big, args.entries)
        print(
            f"generated {args.entries} entries ({big.stat().st_size / 1e6:.1f} MB) "
            f"in {time.perf_counter() - t:.1f} s"
        )
        print(f"verify_chain: {timed(lambda: L.verify_chain(big))}")
        cli = [sys.executable, "-m", "provenance", "audit", "verify", "--ledger", str(big)]
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            runs.append(time.perf_counter() - t)
        print(f"`provenance audit verify` (whole process): {min(runs):.2f} s wall (best of 3)")
        print(f"summary (load + verify + aggregate): {timed(lambda: audit.summary(big), 1)}")
        s = audit.summary(big)
        page = report_html.render(s)
        kb = len(page) / 1e3
        print(f"HTML render: {timed(lambda: report_html.render(s), 1)}, page {kb:.0f} kB")

        one = tmp / "one.jsonl"
        n = 2000
        t = time.perf_counter()
        _worker(str(one), n)
        dt1 = time.perf_counter() - t
        print(f"append, 1 process: {n / dt1:.0f} entries/s ({dt1 / n * 1e3:.2f} ms each, fsync)")
        many = tmp / "many.jsonl"
        t = time.perf_counter()
        procs = [FORK.Process(target=_worker, args=(str(many), 200)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        dt8 = time.perf_counter() - t
        r = L.verify_chain(many)
        print(
            f"append, 8 processes x 200: {r.entries} entries, chain ok={r.ok}, "
            f"{dt8:.2f} s ({r.entries / dt8:.0f} entries/s)"
        )

        rng = random.Random(7)  # noqa: S311 - seeded kill times, not crypto
        for torn in (False, True):
            good, partial = kill_trials(tmp, 50, torn, rng)
            what = "torn writes (os.write split in two)" if torn else "one os.write per line"
            print(
                f"SIGKILL x 50, {what}: {good}/50 verified + repaired, "
                f"{partial} left a partial last line"
            )
        lat = []
        for i in range(200):
            t = time.perf_counter()
            L.append(one, draft(i))
            lat.append(time.perf_counter() - t)
        print(
            f"append latency: median {statistics.median(lat) * 1e3:.2f} ms, "
            f"max {max(lat) * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
