#!/bin/sh
# Time the pytest example: toolchain assembly (cold apt cache), a cold check build in a
# fresh store, and a whole `provenance build` (eval, build, hash, sign, note).
# Usage: bench/pytest-example.sh   (needs nix, apt-get, dpkg-deb; writes under a temp dir)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export NIX_CONFIG="experimental-features = nix-command flakes
sandbox = true
sandbox-fallback = false
substituters =
use-registries = false"
t() { s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "toolchain, cold apt cache: $(PROVENANCE_DEB_CACHE=$work/debs t "$root/examples/python-pytest/build-toolchain.sh" --check) s"
cp -rL "$root/examples/python-pytest" "$work/calc"  # -L: ./nix links to the one library
rm -rf "$work/calc/toolchain" "$work/calc/.debs"
(cd "$work/calc" && git init -q && git add -A && git -c user.name=b -c user.email=b@x commit -qm calc)
nix store add-path --store "$work/store" --name python-pytest-toolchain "$root/examples/python-pytest/toolchain" >/dev/null
echo "check build, fresh store: $(t nix build --store "$work/store" --no-link "git+file://$work/calc#checks.x86_64-linux.unit") s"
python3 -m provenance keygen --out-dir "$work/keys" >/dev/null 2>&1
echo "provenance build (cold): $(cd "$work/calc" && t python3 -m provenance build --key "$work/keys/provenance.key" --force .) s"
echo "provenance build (cache hit): $(cd "$work/calc" && t python3 -m provenance build --key "$work/keys/provenance.key" .) s"
rm -rf "$work"
