"""Benchmark binary caches (issue 14): publish, and verify --rebuild with dependencies
from a cache, side by side with the plain nix commands they stand on.

A generated flake (bench/gen_dag.py --refs) has one check whose build closure holds N
derivations whose outputs reference each other, so the check's inputs have a runtime
closure of N paths, as a nixpkgs check's stdenv has. It is built and attested once; then,
median of -n runs, each into a fresh cache or store:

  publish:  `nix copy --to file://C?secret-key=K` of exactly the paths publish sends
            vs  `provenance publish --to file://C --secret-key K` (CLI);
  rebuild:  `nix copy --derivation` + `nix build --store S` of the dependencies from the
            cache + `nix build --store S --option substitute false` of the check
            vs  `provenance verify --rebuild --substituters file://C` (CLI)
            and `provenance verify --rebuild` with no cache (every dependency built).

Usage: .venv/bin/python bench/bench_cache.py [-n 3] [--nodes 1500] [--no-cache-runs 1]

Each pair runs alternately (nix, then ours, run by run), so load drift hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import NIX, bench_env  # noqa: E402
from bench.gen_dag import generate  # noqa: E402
from provenance.doors.nix import current_system  # noqa: E402

CLI = str(ROOT / ".venv" / "bin" / "provenance")


def sh(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:4]}... failed:\n{done.stderr[-3000:]}")
    return done


def rm(path: Path) -> None:
    if path.exists():
        for d, _, _ in os.walk(path):
            Path(d).chmod(0o755)
        shutil.rmtree(path)


def timed(fn: Callable[[], object], n: int, setup: Callable[[], None]) -> list[float]:
    out = []
    for _ in range(n):
        setup()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def side_by_side(
    a: Callable[[], object], b: Callable[[], object], n: int, setup: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Alternate the two, run by run: a machine whose load drifts slows both alike."""
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(n):
        xs += timed(a, 1, setup)
        ys += timed(b, 1, setup)
    return xs, ys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=1500)
    ap.add_argument(
        "--no-cache-runs", type=int, default=1, help="runs of the rebuild without a cache (slow)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    env = bench_env()
    env["XDG_CACHE_HOME"] = str(work / "xdg")  # Nix's narinfo cache: fresh for every cache dir
    repo = generate(work / "dag", args.nodes, refs=True)
    sh([CLI, "keygen", "--out-dir", str(work / "keys")], env)
    key, pub = work / "keys" / "provenance.key", work / "keys" / "provenance.pub"
    sk = work / "cache.sk"
    sk.write_text(sh([*NIX, "key", "generate-secret", "--key-name", "bench-1"], env).stdout)
    pk = subprocess.run(
        [*NIX, "key", "convert-secret-to-public"],
        input=sk.read_text(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    t = time.perf_counter()
    sh([CLI, "build", str(repo), "--key", str(key), "-q"], env)
    print(f"attested the {args.nodes}-derivation check in {time.perf_counter() - t:.1f} s")
    drv = sh([*NIX, "eval", "--raw", f"{repo}#checks.{current_system()}.big.drvPath"], env).stdout
    top = sh([*NIX, "eval", "--raw", f"{repo}#checks.{current_system()}.big.top.drvPath"], env)
    top_drv = top.stdout
    cache, plain, store = work / "cache", work / "plain-cache", work / "store"
    publish = [CLI, "publish", "--flake", str(repo), "--trusted-key", str(pub), "--json"]
    publish += [
        "--to",
        f"file://{cache}",
        "--secret-key",
        str(sk),
        "--no-bundle",
        "--closure",
        "runtime",
    ]
    summary = json.loads(sh(publish, env).stdout)
    paths = sorted({*summary["alreadyThere"], *summary["copied"]})
    print(f"publish sends {len(paths)} paths, {summary['bytes']} bytes (runtime closure)")

    def fresh(*dirs: Path) -> Callable[[], None]:
        def setup() -> None:
            for d in dirs:
                rm(d)
            rm(work / "xdg")

        return setup

    rows: dict[str, list[float]] = {}
    (
        rows["nix copy --to file://C (same paths)"],
        rows["provenance publish --to file://C"],
    ) = side_by_side(
        lambda: sh([*NIX, "copy", "--to", f"file://{plain}?secret-key={sk}", *paths], env),
        lambda: sh(publish, env),
        args.n,
        fresh(plain, cache),
    )
    sh(publish, env)  # leave the cache filled for the rebuilds
    subs = ["--option", "substituters", f"file://{cache}", "--option"]
    subs += ["trusted-public-keys", pk, "--option", "require-sigs", "true"]

    def plain_rebuild() -> None:
        sh([*NIX, "copy", "--derivation", "--to", str(store), drv], env)
        sh([*NIX, "build", "--no-link", "--store", str(store), *subs, top_drv], env)
        no_subst = ["--option", "substitute", "false"]
        sh([*NIX, "build", "--no-link", "--store", str(store), *no_subst, drv], env)

    verify = [CLI, "verify", "--flake", str(repo), "--trusted-key", str(pub), "--rebuild"]
    verify += ["--store", str(store)]
    cached = [*verify, "--substituters", f"file://{cache}", "--trusted-public-keys", pk]
    (
        rows["nix: copy drvs, substitute deps, build check"],
        rows["provenance verify --rebuild --substituters C"],
    ) = side_by_side(plain_rebuild, lambda: sh(cached, env), args.n, fresh(store))
    if args.no_cache_runs:
        rows["provenance verify --rebuild (no cache)"] = timed(
            lambda: sh(verify, env), args.no_cache_runs, fresh(store)
        )

    width = max(map(len, rows))
    print(f"\n{'command':{width}}  median s   min     max   (n={args.n}, {os.cpu_count()} cpus)")
    med = {k: statistics.median(v) for k, v in rows.items()}
    for name, samples in rows.items():
        print(f"{name:{width}}  {med[name]:7.2f}  {min(samples):6.2f}  {max(samples):6.2f}")
    names = list(rows)
    print(
        f"\npublish / nix copy:                 {med[names[1]] / med[names[0]]:.2f}x (goal <= 1.5)"
    )
    print(f"verify --rebuild with cache / nix:  {med[names[3]] / med[names[2]]:.2f}x (goal <= 1.3)")
    if args.no_cache_runs:
        print(f"verify --rebuild without / with:    {med[names[4]] / med[names[3]]:.1f}x")
    rm(work)


if __name__ == "__main__":
    main()
