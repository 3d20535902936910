#!/bin/sh
# Assemble this example's toolchain (Python 3.11 + pytest + a static busybox) from Debian
# packages into ./toolchain, add it to the Nix store as a content-addressed path, and pin
# its NAR hash in toolchain.nix (commit that file; ./toolchain itself is gitignored).
#
#   ./build-toolchain.sh              # build, add to the default store, (re)write the pin
#   ./build-toolchain.sh --check      # fail if the rebuilt toolchain differs from the pin
#   NIX_STORE_URI=/tmp/x/a ./build-toolchain.sh --add-only   # add the existing tree to another store
#
# Needs: apt-get (Debian 12 sources configured), dpkg-deb, nix, and a static busybox.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${PROVENANCE_DEB_CACHE:-$here/.debs}
tree=$here/toolchain
name=python-pytest-toolchain
mode=${1:-build}
store_args=""
[ -n "${NIX_STORE_URI:-}" ] && store_args="--store $NIX_STORE_URI"
nix() { command nix --extra-experimental-features nix-command $store_args "$@"; }

PKGS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1
libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8
libdb5.3 libgdbm6 libcrypt1 libnsl2 libtirpc3 media-types python3-pytest python3-pluggy
python3-iniconfig python3-packaging python3-attr"

if [ "$mode" != --add-only ]; then
  mkdir -p "$cache"
  missing=""
  for p in $PKGS; do
    ls "$cache/${p}_"*.deb >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "downloading:$missing" >&2
    (cd "$cache" && apt-get download $missing)
  fi
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || { echo "no busybox (apt-get install busybox-static)" >&2; exit 2; }
  rm -rf "$tree"
  mkdir -p "$tree/bin"
  for p in $PKGS; do
    set -- "$cache/${p}_"*.deb
    [ "$#" -eq 1 ] || { echo "expected one .deb for $p in $cache, found: $*" >&2; exit 2; }
    dpkg-deb -x "$1" "$tree"
  done
  # Docs, manuals and translations are not needed to run tests; dropping them halves the tree.
  rm -rf "$tree/usr/share/doc" "$tree/usr/share/man" "$tree/usr/share/locale" \
    "$tree/usr/share/lintian" "$tree/usr/share/info"
  find "$tree" -name __pycache__ -type d -prune -exec rm -rf {} +
  cp "$(readlink -f "$busybox")" "$tree/bin/busybox"
  chmod -R u+w,go-w "$tree"
fi

hash=$(nix hash path "$tree")
path=$(nix store add-path --name "$name" "$tree")
versions=$(for f in "$cache"/*.deb; do dpkg-deb -W --showformat='${Package}=${Version}\n' "$f"; done | sort)
pin=$(cat "$here/toolchain.nix" 2>/dev/null | sed -n 's/.*narHash = "\(.*\)";.*/\1/p')
case "$mode" in
  --check)
    [ "$hash" = "$pin" ] || { echo "toolchain differs from the pin: $hash != $pin" >&2; exit 1; }
    ;;
  --add-only) ;;
  *)
    {
      echo "# Written by build-toolchain.sh: the toolchain's NAR hash, and what went into it."
      echo "{"
      echo "  narHash = \"$hash\";"
      echo "  packages = ["
      echo "$versions" | sed 's/.*/    "&"/'
      echo "  ];"
      echo "}"
    } > "$here/toolchain.nix"
    ;;
esac
echo "$path"
