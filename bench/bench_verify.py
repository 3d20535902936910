"""Benchmark `provenance verify` against the nix commands it stands on.

Builds a fixture flake (tests/fixtures/flakes/basic plus a `slow` check that hashes
300 MiB, about a second of real work), attests it, then times, median of N runs:

  binding:  `nix eval` of one drvPath            vs  `provenance verify` (no rebuild),
            both the CLI (with Python start-up) and the in-process API;
  rebuild:  `nix build --rebuild` of `slow`      vs  `provenance verify --rebuild --in-place`;
            `nix copy` + `nix build --store NEW` vs  `provenance verify --rebuild` (fresh store).

Usage: .venv/bin/python bench/bench_verify.py [-n 5]
"""

from __future__ import annotations

import argparse
import base64
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
sys.path.insert(0, str(ROOT / "tests"))

from conftest import NIX_CONFIG, make_flake  # noqa: E402

from provenance.attest import pipeline as attest  # noqa: E402
from provenance.doors.nix import Nix, current_system  # noqa: E402
from provenance.formats import keys  # noqa: E402
from provenance.policy.trust import from_key_files  # noqa: E402
from provenance.verify import pipeline as verify  # noqa: E402

SLOW = """{ mk, tests }: {
  slow = mk "slow-check" ''
    busybox dd if=/dev/zero bs=1048576 count=300 2>/dev/null | busybox sha256sum > $out
  '' { };
}
"""
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]


def sh(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{done.stderr}")


def median_ms(
    fn: Callable[[], None], n: int, setup: Callable[[], None] | None = None
) -> tuple[float, float, float]:
    times = []
    for _ in range(n):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), max(times)


def rm_store(path: Path) -> None:
    if path.exists():
        for d, _, _ in os.walk(path):
            Path(d).chmod(0o755)
        shutil.rmtree(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    n = ap.parse_args().n
    os.environ["NIX_CONFIG"] = NIX_CONFIG
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.invalid")
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    repo = make_flake(work / "repo", extra_checks=SLOW)
    key, pub, _ = keys.generate(work / "keys")
    report = attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())
    assert report.bundle_path
    bundle = work / "all.intoto.jsonl"
    shutil.copy(report.bundle_path, bundle)
    slow_line = next(ln for ln in bundle.read_text().splitlines() if ln and "slow" in _check(ln))
    slow_bundle = work / "slow.intoto.jsonl"
    slow_bundle.write_text(slow_line + "\n")
    det_line = next(ln for ln in bundle.read_text().splitlines() if ln and _check(ln) == "det")
    det_bundle = work / "det.intoto.jsonl"
    det_bundle.write_text(det_line + "\n")
    drv = {c.name: c.drv_path for c in report.checks}
    ref = f"git+file://{repo}?rev={report.commit}"
    attr = f"checks.{current_system()}"
    cli = [
        str(ROOT / ".venv" / "bin" / "provenance"),
        "verify",
        "--flake",
        str(repo),
        "--trusted-key",
        str(pub),
    ]
    policy = from_key_files([pub])
    fresh = work / "fresh"

    rows: list[tuple[str, tuple[float, float, float]]] = []
    rows.append(
        (
            "nix eval --raw <det>.drvPath",
            median_ms(lambda: sh([*NIX, "eval", "--raw", f"{ref}#{attr}.det.drvPath"]), n),
        )
    )
    rows.append(
        (
            "nix eval (all checks' drvPaths, what verify runs)",
            median_ms(
                lambda: sh(
                    [
                        *NIX,
                        "eval",
                        "--json",
                        f"{ref}#{attr}",
                        "--apply",
                        "builtins.mapAttrs (n: v: v.drvPath)",
                    ]
                ),
                n,
            ),
        )
    )
    rows.append(
        (
            "python -c 'import provenance.cli' (start-up)",
            median_ms(
                lambda: sh([str(ROOT / ".venv" / "bin" / "python"), "-c", "import provenance.cli"]),
                n,
            ),
        )
    )
    rows.append(
        ("provenance verify det.bundle (CLI)", median_ms(lambda: sh([*cli, str(det_bundle)]), n))
    )
    rows.append(("provenance verify all 4 (CLI)", median_ms(lambda: sh([*cli, str(bundle)]), n)))
    rows.append(
        (
            "verify() API, det.bundle (in-process)",
            median_ms(lambda: _api(verify.VerifyRequest(repo, policy, bundles=(det_bundle,))), n),
        )
    )

    rows.append(
        (
            "nix build --rebuild <slow> (in place)",
            median_ms(lambda: sh([*NIX, "build", "--no-link", "--rebuild", drv["slow"]]), n),
        )
    )
    rows.append(
        (
            "provenance verify --rebuild --in-place slow",
            median_ms(lambda: sh([*cli, "--rebuild", "--in-place", str(slow_bundle)]), n),
        )
    )
    rows.append(
        (
            "nix copy --derivation + nix build --store NEW <slow>",
            median_ms(
                lambda: (
                    sh([*NIX, "copy", "--derivation", "--to", str(fresh), drv["slow"]]),
                    sh([*NIX, "build", "--no-link", "--store", str(fresh), drv["slow"]]),
                )[-1],
                n,
                setup=lambda: rm_store(fresh),
            ),
        )
    )
    rows.append(
        (
            "nix build --store NEW <flake>#slow (eval+copy+build)",
            median_ms(
                lambda: sh(
                    [*NIX, "build", "--no-link", "--store", str(fresh), f"{ref}#{attr}.slow"]
                ),
                n,
                setup=lambda: rm_store(fresh),
            ),
        )
    )
    rows.append(
        (
            "provenance verify --rebuild slow (fresh temp store)",
            median_ms(lambda: sh([*cli, "--rebuild", str(slow_bundle)]), n),
        )
    )
    rows.append(
        (
            "provenance verify --rebuild det (fresh temp store)",
            median_ms(lambda: sh([*cli, "--rebuild", str(det_bundle)]), n),
        )
    )
    rm_store(fresh)

    width = max(len(r[0]) for r in rows)
    print(f"{'command':{width}}  median ms    min     max   (n={n}, {os.cpu_count()} cpus)")
    for name, (med, lo, hi) in rows:
        print(f"{name:{width}}  {med:9.0f}  {lo:6.0f}  {hi:6.0f}")
    rm_store(work)


def _api(req: verify.VerifyRequest) -> None:
    assert verify.verify(req, Nix()).passed


def _check(line: str) -> str:
    stmt = json.loads(base64.b64decode(json.loads(line)["payload"]))
    if stmt["predicateType"] != "https://slsa.dev/provenance/v1":
        return ""  # a test-result companion statement
    return str(stmt["predicate"]["buildDefinition"]["externalParameters"]["check"])


if __name__ == "__main__":
    main()
