"""Every figure of issue 17 against the nix work it cannot avoid, side by side, interleaved.

    .venv/bin/python bench/bench_floor.py [--runs 7] [--before /work/main]
        [--scale 1500,10000,100000] [--work DIR] [--only targets|scale|counts|imports]

Targets (the example flake and a 1,500-derivation chain from gen_dag.py):
  forced re-attestation      vs  nix eval drvPath + path-info --derivation -r + build --rebuild
  cache hit                  vs  a warm `nix build` of the same checks
  verify (no rebuild), gate  vs  `nix eval` of the checks' drvPaths
Each round runs every command of a figure once, in turn, so drifting load slows all alike;
a figure's ratio is the median over rounds of (its time / its floor's time that round).
With --before TREE, the same commands run from another checkout (its `provenance`
package on PYTHONPATH, this interpreter), interleaved in the same rounds: before/after.

Scaling (gen_dag.py --shape layers --place): forced re-attestation at each size, its floor,
wall and CPU time, peak RSS of provenance's own process and of the largest nix it started,
per-derivation cost, and the bundle's size. Counts: the processes each command starts (a
PATH shim logs every nix and git argv). Imports: `-X importtime` totals per command.
Prints Markdown; bench/README.md holds a copy of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import NIX, bench_env  # noqa: E402
from bench.gen_dag import generate, place_outputs  # noqa: E402
from provenance.doors.nix import current_system  # noqa: E402
from provenance.example import materialise  # noqa: E402

SYSTEM = current_system()
RSS = Path(__file__).with_name("rss.py")


class Tree:
    """A checkout whose `provenance` runs: this one, or --before's."""

    def __init__(self, root: Path, label: str) -> None:
        self.root, self.label = root, label

    def cmd(self, *args: str | Path) -> list[str]:
        return [sys.executable, str(RSS), "-m", "provenance", *map(str, args)]

    def env(self, base: dict[str, str], **extra: str) -> dict[str, str]:
        return {**base, "PYTHONPATH": str(self.root), **extra}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None) -> float:
    return run_cpu(cmd, env, cwd)[0]


def run_cpu(
    cmd: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the command and every process it waited for."""
    c0, t0 = _cpu(), time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{done.stderr.decode()[-2000:]}")
    return wall, cpu


CPU: dict[str, list[float]] = {}  # CPU seconds per command of the last `rounds`


def rounds(
    named: dict[str, tuple[list[str | Path], dict[str, str]]], runs: int, warm: int = 1
) -> dict[str, list[float]]:
    """Interleaved: every command once per round, `warm` untimed rounds first. Wall
    seconds per command; their CPU seconds go to CPU."""
    out: dict[str, list[float]] = {k: [] for k in named}
    CPU.clear()
    CPU.update({k: [] for k in named})
    for i in range(warm + runs):
        for k, (cmd, env) in named.items():
            wall, cpu = run_cpu(cmd, env)
            if i >= warm:
                out[k].append(wall)
                CPU[k].append(cpu)
    return out


def med_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def paired(num: list[float], den: list[list[float]]) -> float:
    """Median over rounds of num / sum(den) in that round."""
    return statistics.median(n / sum(d[i] for d in den) for i, n in enumerate(num))


def table(title: str, rows: list[tuple[str, ...]]) -> None:
    print(
        f"\n### {title}\n\n| what | median ms | ratio to floor | CPU ms | CPU ratio |"
        "\n|---|---|---|---|---|"
    )
    for r in rows:
        print("| " + " | ".join(r) + " |")


def _git_commit(repo: Path, env: dict[str, str]) -> str:
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return _rev(repo)


def _rev(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _drv(ref: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [*NIX, "eval", "--raw", f"{ref}.drvPath"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


# -- the targets -----------------------------------------------------------------------


def targets(work: Path, trees: list[Tree], runs: int, env: dict[str, str]) -> None:
    key, pub = work / "keys" / "provenance.key", work / "keys" / "provenance.pub"
    example = work / "example"
    if not example.exists():
        materialise(example)
        _git_commit(example, env)
    dag = work / "chain1500"
    if not dag.exists():
        generate(dag, 1500)
        print("building the 1,500-node chain once (minutes)...", file=sys.stderr)
        subprocess.run(
            [*NIX, "build", "--no-link", f"{dag}#checks.{SYSTEM}.big"], env=env, check=True
        )
    for repo in (example, dag):
        for t in trees:  # attested by every tree: each tree's cache hit is its own line
            run(t.cmd("build", repo, "--key", key, "-q"), t.env(env))
    for repo, check in ((example, "unit"), (dag, "big")):
        ref = f"git+file://{repo}?rev={_rev(repo)}#checks.{SYSTEM}"
        drv = _drv(f"{ref}.{check}", env)
        bundle = next((repo / ".provenance").glob("*.intoto.jsonl"))
        floor_force = {
            "nix eval drvPath": ([*NIX, "eval", "--raw", f"{ref}.{check}.drvPath"], env),
            "nix path-info --derivation -r": (
                [*NIX, "path-info", "--json", "--derivation", "-r", drv],
                env,
            ),
            "nix build --rebuild": ([*NIX, "build", "--no-link", "--rebuild", drv], env),
        }
        warm = {"nix build (warm)": ([*NIX, "build", "--no-link", f"{ref}.{check}"], env)}
        drvs = {
            "nix eval of the drvPaths": (
                [*NIX, "eval", "--json", ref, "--apply", "builtins.mapAttrs (n: v: v.drvPath)"],
                env,
            )
        }
        mine: dict[str, tuple[list[str | Path], dict[str, str]]] = {}
        for t in trees:
            e = t.env(env)
            mine[f"{t.label}: build --force"] = (
                t.cmd("build", repo, "--key", key, "--force", "-q"),
                e,
            )
            mine[f"{t.label}: build (cache hit)"] = (t.cmd("build", repo, "--key", key, "-q"), e)
            mine[f"{t.label}: verify"] = (
                t.cmd("verify", "--flake", repo, "--trusted-key", pub, bundle),
                e,
            )
            mine[f"{t.label}: gate"] = (t.cmd("gate", repo, "--trusted-key", pub), e)
        got = rounds({**floor_force, **warm, **drvs, **mine}, runs)
        cpu = dict(CPU)
        floors = [k for k in got if k in floor_force or k in warm or k in drvs]
        rows: list[tuple[str, ...]] = [
            (k, f"{med_ms(got[k]):.0f}", "floor", f"{med_ms(cpu[k]):.0f}", "floor") for k in floors
        ]
        force = list(floor_force)
        total = ("= floor of a forced re-attestation", f"{sum(med_ms(got[k]) for k in force):.0f}")
        rows.insert(3, (*total, "", f"{sum(med_ms(cpu[k]) for k in force):.0f}", ""))
        for t in trees:
            for what, floor in (
                ("build --force", force),
                ("build (cache hit)", ["nix build (warm)"]),
                ("verify", ["nix eval of the drvPaths"]),
                ("gate", ["nix eval of the drvPaths"]),
            ):
                k = f"{t.label}: {what}"
                wall_ratio = paired(got[k], [got[f] for f in floor])
                cpu_ratio = paired(cpu[k], [cpu[f] for f in floor])
                ms, cpu_ms = f"{med_ms(got[k]):.0f}", f"{med_ms(cpu[k]):.0f}"
                rows.append((k, ms, f"{wall_ratio:.2f}x", cpu_ms, f"{cpu_ratio:.2f}x"))
        name = "example flake (1 check, 5 paths)" if repo == example else "1,500-derivation chain"
        table(f"{name}; {runs} interleaved rounds, {os.cpu_count()} cores", rows)


# -- scaling -----------------------------------------------------------------------------


def scale(work: Path, tree: Tree, sizes: list[int], runs: int, env: dict[str, str]) -> None:
    key = work / "keys" / "provenance.key"
    print(
        "\n### Scaling (layers shape, forced re-attestation, `--closure auto`)\n\n"
        "| derivations | floor ms (CPU) | provenance ms (CPU) | ratio wall (CPU) | "
        "µs per drv wall (CPU) | provenance peak RSS MB | largest nix RSS MB | "
        "statement bytes: auto / full / digest |\n|---|---|---|---|---|---|---|---|"
    )
    for n in sizes:
        repo = work / f"layers{n}"
        if not repo.exists():
            generate(repo, n, "layers")
            print(f"placing the {n}-node DAG (minutes at 100k)...", file=sys.stderr)
            place_outputs(repo)
        e = tree.env(env)
        run(tree.cmd("build", repo, "--key", key, "-q"), e)
        ref = f"git+file://{repo}?rev={_rev(repo)}#checks.{SYSTEM}.big"
        drv = _drv(ref, env)
        stats = work / f"rss-{n}.json"  # outside the repository: no untracked files in it
        got = rounds(
            {
                "eval": ([*NIX, "eval", "--raw", f"{ref}.drvPath"], env),
                "closure": ([*NIX, "path-info", "--json", "--derivation", "-r", drv], env),
                "rebuild": ([*NIX, "build", "--no-link", "--rebuild", drv], env),
                "force": (
                    tree.cmd("build", repo, "--key", key, "--force", "-q"),
                    {**e, "BENCH_RSS_OUT": str(stats)},
                ),
            },
            runs,
            warm=0,
        )
        cpu = dict(CPU)
        rss = json.loads(stats.read_text())
        parts = ("eval", "closure", "rebuild")
        floor, floor_cpu = (sum(med_ms(x[k]) for k in parts) for x in (got, cpu))
        force, force_cpu = med_ms(got["force"]), med_ms(cpu["force"])
        ratio = paired(got["force"], [got[k] for k in parts])
        ratio_cpu = paired(cpu["force"], [cpu[k] for k in parts])
        sizes_by = [
            _statement_size(tree, repo, work / f"size-{n}-{how}.intoto.jsonl", key, e, how)
            for how in ("auto", "full", "digest")
        ]
        print(
            f"| {n + 1:,} | {floor:.0f} ({floor_cpu:.0f}) | {force:.0f} ({force_cpu:.0f}) | "
            f"{ratio:.2f}x ({ratio_cpu:.2f}x) | {force * 1000 / (n + 1):.0f} "
            f"({force_cpu * 1000 / (n + 1):.0f}) | {rss['self_mb']:.0f} | "
            f"{rss['children_mb']:.0f} | {' / '.join(sizes_by)} |"
        )


def _statement_size(
    tree: Tree, repo: Path, out: Path, key: Path, env: dict[str, str], how: str
) -> str:
    cmd = tree.cmd("build", repo, "--key", key, "--force", "-q", "--no-note", "-o", out)
    done = subprocess.run([*map(str, cmd), "--closure", how], env=env, capture_output=True)
    if done.returncode == 3:
        return "refused"
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode()[-2000:])
    return f"{max(len(ln) for ln in out.read_bytes().splitlines()):,}"


# -- processes and imports -----------------------------------------------------------------

SHIM = """#!/bin/sh
{ flock 9; printf '%s\\0' "$(basename "$0")" "$@" >&9; printf '\\036' >&9; } 9>> "$BENCH_ARGV_LOG"
exec "{real}" "$@"
"""


def counts(work: Path, trees: list[Tree], env: dict[str, str]) -> None:
    shims = work / "shims"
    shims.mkdir(exist_ok=True)
    for tool in ("nix", "git"):
        real = shutil.which(tool, path=env.get("PATH"))
        assert real, tool
        (shims / tool).write_text(SHIM.replace("{real}", real))
        (shims / tool).chmod(0o755)
    key, pub = work / "keys" / "provenance.key", work / "keys" / "provenance.pub"
    dag = work / "chain1500"
    bundle = next((dag / ".provenance").glob("*.intoto.jsonl"))
    print("\n### Processes per run (1,500-derivation chain)\n")
    print("| command | " + " | ".join(t.label for t in trees) + " |\n|---|" + "---|" * len(trees))
    for what, args in (
        ("build --force", ["build", dag, "--key", key, "--force", "-q"]),
        ("build (cache hit)", ["build", dag, "--key", key, "-q"]),
        ("verify", ["verify", "--flake", dag, "--trusted-key", pub, bundle]),
        ("gate", ["gate", dag, "--trusted-key", pub]),
    ):
        cells = []
        for t in trees:
            log = work / f"argv-{t.label}.log"
            log.write_bytes(b"")
            path = f"{shims}:{env['PATH']}"
            run(t.cmd(*args), t.env(env, PATH=path, BENCH_ARGV_LOG=str(log)))
            records = log.read_bytes().split(b"\036")[:-1]  # argv may hold newlines
            calls = [r.removesuffix(b"\0").split(b"\0") for r in records]
            c = Counter(_call(a) for a in calls)
            tools = Counter(a[0].decode() for a in calls)
            detail = ", ".join(f"{n}x {k}" if n > 1 else k for k, n in sorted(c.items()))
            cells.append(f"**{tools['nix']} nix + {tools['git']} git**: {detail}")
        print(f"| {what} | " + " | ".join(cells) + " |")


def _call(argv: list[bytes]) -> str:
    words = [w.decode(errors="replace") for w in argv]
    tool, rest = words[0], words[1:]
    skip = {"--extra-experimental-features", "--option", "-C", "--ref", "--store"}
    out: list[str] = []
    i = 0
    while i < len(rest) and len(out) < 2:
        w = rest[i]
        if w in skip:
            i += 3 if w == "--option" else 2
            continue
        if not w.startswith("-") or w in ("--version",):
            hashy = len(w) == 40 and all(c in "0123456789abcdef" for c in w)
            out.append("…" if w.startswith("/") or "://" in w or hashy else w)
        i += 1
    return f"{tool} {' '.join(out)}"


def imports(work: Path, trees: list[Tree], env: dict[str, str]) -> None:
    key, pub = work / "keys" / "provenance.key", work / "keys" / "provenance.pub"
    dag = work / "chain1500"
    bundle = next((dag / ".provenance").glob("*.intoto.jsonl"))
    print("\n### Python start-up: `-X importtime` totals (ms, least of 7)\n")
    print("| command | " + " | ".join(t.label for t in trees) + " |\n|---|" + "---|" * len(trees))
    for what, args in (
        ("`--help`", ["--help"]),
        ("build (cache hit)", ["build", dag, "--key", key, "-q"]),
        ("build --force", ["build", dag, "--key", key, "--force", "-q"]),
        ("verify", ["verify", "--flake", dag, "--trusted-key", pub, bundle]),
        ("gate", ["gate", dag, "--trusted-key", pub]),
    ):
        cells = []
        for t in trees:
            totals = []
            for _ in range(7):
                done = subprocess.run(
                    # rss.py, not -m: with -m the working directory comes first on sys.path
                    [sys.executable, "-X", "importtime", *t.cmd(*args)[1:]],
                    env=t.env(env),
                    capture_output=True,
                    text=True,
                )
                totals.append(import_total(done.stderr))
            cells.append(f"{min(totals):.0f}")  # the least: the import work, without the noise
        print(f"| {what} | " + " | ".join(cells) + " |")


def import_total(stderr: str) -> float:
    """Sum of the top-level modules' cumulative import times, in ms."""
    total = 0
    for ln in stderr.splitlines():
        if ln.startswith("import time:") and "self [us]" not in ln:
            _, cum, name = ln.split("|")
            if name.startswith(" ") and not name.startswith("  "):
                total += int(cum)
    return total / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", type=Path, help="another checkout to compare (e.g. main)")
    ap.add_argument("--scale", default="1500,10000,100000")
    ap.add_argument("--scale-runs", type=int, default=3)
    ap.add_argument("--work", type=Path, help="keep generated flakes here, reuse them")
    ap.add_argument("--only", choices=("targets", "scale", "counts", "imports"))
    args = ap.parse_args()
    env = bench_env()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-floor-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "keys" / "provenance.key").exists():
        subprocess.run(
            [sys.executable, "-m", "provenance", "keygen", "--out-dir", str(work / "keys")],
            env={**env, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
    trees = [Tree(ROOT, "after")]
    if args.before:
        trees.insert(0, Tree(args.before.resolve(), "before"))
    for t in trees:
        # As installed (pip and nix compile the package): with PYTHONDONTWRITEBYTECODE set
        # and no bytecode yet, every run would compile the modules it imports, tens of ms.
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(t.root / "provenance")],
            check=True,
            capture_output=True,
        )
    print(
        f"nix: {subprocess.run([*NIX, '--version'], capture_output=True, text=True).stdout.strip()}; "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f} at start"
    )
    if args.only in (None, "targets"):
        targets(work, trees, args.runs, env)
    if args.only in (None, "counts"):
        counts(work, trees, env)
    if args.only in (None, "imports"):
        imports(work, trees, env)
    if args.only in (None, "scale"):
        sizes = [int(s) for s in args.scale.split(",") if s]
        scale(work, trees[-1], sizes, args.scale_runs, env)
    print(
        f"\n(load {os.getloadavg()[0]:.1f} at the end; children CPU "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.0f} s user)"
    )


if __name__ == "__main__":
    main()
