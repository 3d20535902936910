"""Run `python bench/rss.py -m MODULE ARGS...` like `python -m MODULE ARGS...`; at exit, when
BENCH_RSS_OUT is set, write there the peak RSS of this process and of the largest child it
waited for (a nix it started), and the CPU seconds of both (resource.getrusage)."""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import sys


def _report() -> None:
    out = os.environ.get("BENCH_RSS_OUT")
    if not out:
        return
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump(
            {
                "self_mb": me.ru_maxrss / 1024,
                "children_mb": kids.ru_maxrss / 1024,
                "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            },
            f,
        )


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit("usage: python bench/rss.py -m MODULE [ARGS...]")
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    atexit.register(_report)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
