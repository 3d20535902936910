"""Generate a flake whose check has a synthetic build closure of N derivations.

Two shapes, each node a trivial busybox derivation, standing in for a nixpkgs-sized
closure without nixpkgs:

- `chain` (default): node i depends on node i-1 and node i//2 (shared/NIX.md section 6);
  the check `big` depends on the last node. Evaluation recurses N deep, so Nix 2.8
  overflows its stack somewhere past 20,000 nodes.
- `layers`: ceil(sqrt(N)) wide and about as deep; a node depends on two of the layer
  below (j and j+1, wrapping), and `big` on the last w nodes (the top layer and the rest of
  the one below it), so the closure is all N nodes while evaluation recurses only sqrt(N) deep: this shape reaches 100,000.

Usage:

    python bench/gen_dag.py DEST [--nodes 1500] [--shape chain|layers] [--refs] [--place]

DEST becomes a committed git repo with tools/bin/busybox copied from the host. With
`--refs`, each node's output names its dependencies' outputs, so that (as in nixpkgs) the
runtime closure of the last node is the whole graph: a cache must serve it all. With
`--place`, the nodes' outputs are written into the store and registered as valid
(`nix-store --register-validity`) instead of built, and only `big` itself is built:
100,000 sandboxed builds take hours on two cores, and what the benchmarks time
(re-attesting `big`) takes its dependencies from the store as it holds them either way.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
from pathlib import Path

from provenance.doors.drvfile import read_drv_closure_flags
from provenance.doors.nix import current_system
from provenance.example import find_static_busybox

CHAIN = """
      deps = i: if i == 0 then [ ] else [ (nodes (i - 1)) (nodes (i / 2)) ];
      top = [ (nodes (n - 1)) ];
"""
# Layer l holds nodes l*w .. l*w+w-1; only the top layer may be partial.
LAYERS = """
      w = @WIDTH@;
      deps = i:
        let l = i / w; j = i - l * w; below = (l - 1) * w;
        in if l == 0 then [ ] else [ (nodes (below + j)) (nodes (below + (if j + 1 == w then 0 else j + 1))) ];
      top = builtins.genList (k: nodes (n - 1 - k)) (if n > w then w else n);
"""
FLAKE = """{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      n = @NODES@;
      tools = builtins.path { path = ./tools; name = "bootstrap-tools"; };
@SHAPE@
      node = i: derivation {
        name = "node-${toString i}";
        inherit system;
        builder = "${tools}/bin/busybox";
        PATH = "${tools}/bin";
        deps = deps i;
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
        inherit top;
        args = [ "sh" "-c" "busybox cat $top > $out" ];
      };
    };
}
"""


def flake_text(nodes: int, shape: str = "chain") -> str:
    body = CHAIN if shape == "chain" else LAYERS.replace("@WIDTH@", str(math.isqrt(nodes - 1) + 1))
    return (
        FLAKE.replace("@SYSTEM@", current_system())
        .replace("@NODES@", str(nodes))
        .replace("@SHAPE@", body.strip("\n"))
    )


def generate(dest: Path, nodes: int, shape: str = "chain", *, refs: bool = False) -> Path:
    """refs: each node's output names its dependencies' outputs (see the module docstring)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "flake.nix").write_text(
        flake_text(nodes, shape).replace("@REFS@", "$deps" if refs else "")
    )
    (dest / "tools" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(find_static_busybox(), dest / "tools" / "bin" / "busybox")
    env_git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*env_git, "commit", "-qm", f"dag {nodes} {shape}"], cwd=dest, check=True)
    return dest


def place_outputs(dest: Path) -> str:
    """Register every node's output (the file its builder would write) and build `big`.

    Returns big's drvPath. Outputs already valid are left alone.
    """
    nix = ["nix", "--extra-experimental-features", "nix-command flakes"]
    attr = f"{dest}#checks.{current_system()}.big"
    top = subprocess.run(
        [*nix, "eval", "--raw", f"{attr}.drvPath"], check=True, capture_output=True, text=True
    ).stdout
    flags = read_drv_closure_flags([top])
    assert flags is not None, "cannot read the .drv files"
    wanted = {out: drv for drv, f in flags.items() if drv != top for out in f.outputs}
    paths = sorted(wanted)
    invalid: list[str] = []
    for i in range(0, len(paths), 5000):  # argv stays well under ARG_MAX
        done = subprocess.run(
            ["nix-store", "--check-validity", "--print-invalid", *paths[i : i + 5000]],
            check=True,
            capture_output=True,
            text=True,
        )
        invalid += done.stdout.split()
    registration = []
    for out in invalid:
        node = Path(out)
        if node.exists():  # left over from an interrupted build: not valid, so ours to replace
            node.unlink()
        node.write_text(node.name.rsplit("-", 1)[1] + "\n")  # `echo i > $out`
        registration.append(f"{out}\n{wanted[out]}\n0\n")
    if registration:
        subprocess.run(
            ["nix-store", "--register-validity"], input="".join(registration), text=True, check=True
        )
    subprocess.run([*nix, "build", "--no-link", attr], check=True, capture_output=True)
    return top


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--nodes", type=int, default=1500)
    ap.add_argument("--shape", choices=("chain", "layers"), default="chain")
    ap.add_argument("--refs", action="store_true", help="outputs reference their dependencies")
    ap.add_argument("--place", action="store_true", help="register the nodes, build `big`")
    args = ap.parse_args()
    if args.place and args.refs:
        ap.error("--place writes outputs without references: not with --refs")
    print(generate(args.dest, args.nodes, args.shape, refs=args.refs))
    if args.place:
        print(place_outputs(args.dest))
