"""Generate a flake whose check has a synthetic build closure of N derivations.

Node i depends on node i-1 and node i//2 (as in shared/NIX.md section 6), each a trivial
busybox derivation, so the graph stands in for a nixpkgs-sized closure without nixpkgs.
The check `big` depends on the last node. Usage:

    python bench/gen_dag.py DEST [--nodes 1500] [--refs]

DEST becomes a committed git repo with tools/bin/busybox copied from the host.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from provenance.doors.nix import current_system
from provenance.example import find_static_busybox

FLAKE = """{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      n = @NODES@;
      tools = builtins.path { path = ./tools; name = "bootstrap-tools"; };
      node = i: derivation {
        name = "node-${toString i}";
        inherit system;
        builder = "${tools}/bin/busybox";
        PATH = "${tools}/bin";
        deps = if i == 0 then [ ] else [ (nodes (i - 1)) (nodes (i / 2)) ];
        args = [ "sh" "-c" "echo ${toString i} @REFS@ > $out" ];
      };
      cache = builtins.genList node n;
      nodes = i: builtins.elemAt cache i;
    in {
      checks.${system}.big = derivation {
        name = "big-check";
        inherit system;
        builder = "${tools}/bin/busybox";
        PATH = "${tools}/bin";
        top = nodes (n - 1);
        args = [ "sh" "-c" "busybox cat $top > $out" ];
      };
    };
}
"""


def generate(dest: Path, nodes: int, *, refs: bool = False) -> Path:
    """refs: each node's output names its dependencies' outputs, so that (as in nixpkgs)
    the runtime closure of the last node is the whole graph: a cache must serve it all."""
    dest.mkdir(parents=True, exist_ok=True)
    flake = FLAKE.replace("@SYSTEM@", current_system()).replace("@NODES@", str(nodes))
    (dest / "flake.nix").write_text(flake.replace("@REFS@", "$deps" if refs else ""))
    (dest / "tools" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(find_static_busybox(), dest / "tools" / "bin" / "busybox")
    env_git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*env_git, "commit", "-qm", f"dag {nodes}"], cwd=dest, check=True)
    return dest


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--nodes", type=int, default=1500)
    ap.add_argument("--refs", action="store_true", help="outputs reference their dependencies")
    args = ap.parse_args()
    print(generate(args.dest, args.nodes, refs=args.refs))
