#!/usr/bin/env bash
# Set up everything provenance needs on a fresh Debian machine, idempotently:
# Nix (Debian's nix-bin), a static busybox (the examples' and tests' toolchain),
# a virtualenv in .venv with the package and its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's packages move with its point releases, and we tolerate that rather than pin:
# - nix-bin: the tests drive whatever 2.x it is and accept every JSON shape we know (the
#   modern-Nix runs cover newer ones); nothing asserts a version string.
# - busybox-static: every fixture hash is computed from the busybox on the machine, never
#   written into a test; the pytest example records its version in toolchain.nix.
need=()
command -v nix >/dev/null 2>&1 || need+=(nix-bin)
{ [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; } || need+=(busybox-static)
command -v git >/dev/null 2>&1 || need+=(git)
command -v file >/dev/null 2>&1 || need+=(file)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} with apt-get" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# nix-bin only Recommends the package that creates the build users; without the group
# nix refuses to build. Create it (and build users) the way nix-setup-systemd would.
if ! getent group nixbld >/dev/null; then
  echo "setup: creating the nixbld group and build users" >&2
  groupadd -r nixbld
  for i in $(seq 1 10); do
    useradd -r -g nixbld -G nixbld -d /var/empty -s /usr/sbin/nologin "nixbld$i" 2>/dev/null || true
  done
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Pinned (constraints.txt): a PyPI release must not change what the tests run on.
# PIP_CONSTRAINT, not -c: it also reaches the isolated build of the package (setuptools).
PIP_CONSTRAINT=$PWD/constraints.txt .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
echo "setup: ok ($(nix --version), $(.venv/bin/python --version))" >&2
