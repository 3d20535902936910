#!/bin/sh
# Assemble this example's toolchain (Python 3.11 + pytest + a static busybox) from Debian
# packages into ./toolchain, add it to the Nix store as a content-addressed path, and pin
# its NAR hash and the exact package versions in toolchain.nix (commit that file;
# ./toolchain and the .deb cache are gitignored).
#
#   ./build-toolchain.sh              # what the archive serves now -> store; (re)write the pin
#   ./build-toolchain.sh --check      # fail, naming what moved, if that differs from the pin
#   ./build-toolchain.sh --add-only   # add the existing ./toolchain to the store (NIX_STORE_URI)
#   --offline (with the first two)    # use only the .debs already in the cache, ask apt nothing
#
# Debian's archive keeps only the newest version of each package (a security update
# replaces the old .deb), so a pin cannot promise that the same .debs can be downloaded
# forever. The pin promises something else: the check runs on exactly the toolchain whose
# NAR hash is in toolchain.nix (flake.nix passes it to builtins.path), and toolchain.nix
# says which package versions went into it. When the archive moves, --check names the
# packages that moved and re-pinning is one command: ./build-toolchain.sh.
#
# Environment: PROVENANCE_DEB_CACHE (the .deb cache, default ./.debs), NIX_STORE_URI (a
# store to add the toolchain to). Exit status: 0 ok, 1 differs from the pin, 2 usage or a
# missing tool or package.
# Needs: apt-get (Debian 12 sources configured), dpkg-deb, nix, and a static busybox.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${PROVENANCE_DEB_CACHE:-$here/.debs}
tree=$here/toolchain
name=python-pytest-toolchain
mode=build
offline=""
for arg in "$@"; do
  case "$arg" in
    --check | --add-only) mode=$arg ;;
    --offline) offline=1 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-toolchain.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
store_args=""
[ -n "${NIX_STORE_URI:-}" ] && store_args="--store $NIX_STORE_URI"
nix() { command nix --extra-experimental-features nix-command $store_args "$@"; }
die() { echo "build-toolchain.sh: $1" >&2; exit "${2:-2}"; }

PKGS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1
libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libncursesw6 libtinfo6 libreadline8
libdb5.3 libgdbm6 libcrypt1 libnsl2 libtirpc3 media-types python3-pytest python3-pluggy
python3-iniconfig python3-packaging python3-attr"

# deb_of PKG: the one cached .deb of PKG (apt-get download names them PKG_VERSION_ARCH.deb).
deb_of() {
  set -- "$cache/${1}_"*.deb
  [ "$#" -eq 1 ] && [ -e "$1" ] || return 1
  echo "$1"
}

# What the archive serves now: one `apt-get download --print-uris` for all packages gives
# each one's file name (so its version); fetch those not cached and drop older versions.
# Root's apt sandbox user cannot write into a cache it does not own; run as root then.
fetch_served() {
  apt_opts="-o APT::Sandbox::User=root"
  uris=$(apt-get download --print-uris $apt_opts $PKGS 2>/dev/null) || {
    # A fresh machine has no package lists yet, or old ones naming files that are gone.
    if [ "$(id -u)" -eq 0 ]; then
      echo "build-toolchain.sh: refreshing the package lists (apt-get update)" >&2
      apt-get update -qq >&2 || die "apt-get update failed"
      uris=$(apt-get download --print-uris $apt_opts $PKGS) ||
        die "apt-get cannot find these packages (are Debian 12 sources configured?)"
    else
      die "apt-get cannot resolve the packages: run \`sudo apt-get update\`, or use --offline"
    fi
  }
  missing=""
  for file in $(echo "$uris" | awk '{ print $2 }'); do
    pkg=${file%%_*}
    if [ ! -e "$cache/$file" ]; then
      rm -f "$cache/${pkg}_"*.deb  # an older version: the archive no longer serves it
      missing="$missing $pkg"
    fi
  done
  if [ -n "$missing" ]; then
    echo "downloading:$missing" >&2
    (cd "$cache" && apt-get download -q $apt_opts $missing >&2) ||
      die "apt-get download failed for:$missing (try \`apt-get update\`)"
  fi
}

# The versions the toolchain is assembled from, as toolchain.nix lists them: PKG=VERSION.
cached_versions() {
  for p in $PKGS; do
    f=$(deb_of "$p") || die "expected exactly one .deb for $p in $cache (rerun without --offline)"
    dpkg-deb -W --showformat='${Package}=${Version}\n' "$f"
  done
  # The static busybox is copied from the host; record which package it came from.
  bb=$(readlink -f "$(command -v busybox)")
  owner=$( (dpkg-query -S "$bb" || dpkg-query -S "/bin/${bb##*/}") 2>/dev/null | sed -n '1s/:.*//p')
  [ -z "$owner" ] || dpkg-query -W -f='${Package}=${Version}\n' "$owner"
}

pinned_versions() {
  sed -n 's/^ *"\([^"=]*=[^"]*\)".*/\1/p' "$here/toolchain.nix" 2>/dev/null | sort
}

# moved OLD NEW: one line per package whose version differs, "pkg old -> new".
moved() {
  printf '%s\n' "$1" >"$tmp/old"
  printf '%s\n' "$2" >"$tmp/new"
  awk -F= 'NR == FNR { old[$1] = substr($0, length($1) + 2); next }
    { new = substr($0, length($1) + 2)
      if (!($1 in old)) print "  " $1 " (not pinned) -> " new
      else if (old[$1] != new) print "  " $1 " " old[$1] " -> " new
      delete old[$1] }
    END { for (p in old) print "  " p " " old[p] " -> (no longer used)" }' "$tmp/old" "$tmp/new" | sort
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$mode" != --add-only ]; then
  command -v dpkg-deb >/dev/null || die "no dpkg-deb: this script needs a Debian system"
  mkdir -p "$cache"
  [ -n "$offline" ] || fetch_served
  versions=$(cached_versions | sort)
  if [ "$mode" = --check ]; then
    drift=$(moved "$(pinned_versions)" "$versions")
    if [ -n "$drift" ]; then
      echo "the Debian archive has moved since toolchain.nix was pinned:" >&2
      echo "$drift" >&2
      echo "re-pin with: $here/build-toolchain.sh   (then commit toolchain.nix)" >&2
      exit 1
    fi
  fi
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || die "no busybox (apt-get install busybox-static)"
  rm -rf "$tree"
  mkdir -p "$tree/bin"
  for p in $PKGS; do
    dpkg-deb -x "$(deb_of "$p")" "$tree"
  done
  # Docs, manuals and translations are not needed to run tests; dropping them halves the tree.
  rm -rf "$tree/usr/share/doc" "$tree/usr/share/man" "$tree/usr/share/locale" \
    "$tree/usr/share/lintian" "$tree/usr/share/info"
  find "$tree" -name __pycache__ -type d -prune -exec rm -rf {} +
  cp "$(readlink -f "$busybox")" "$tree/bin/busybox"
  chmod -R u+w,go-w "$tree"
fi

[ -d "$tree" ] || die "no $tree to add: run ./build-toolchain.sh first"
hash=$(nix hash path "$tree")
path=$(nix store add-path --name "$name" "$tree")
pin=$(sed -n 's/.*narHash = "\(.*\)";.*/\1/p' "$here/toolchain.nix" 2>/dev/null || true)
case "$mode" in
  --check)
    if [ "$hash" != "$pin" ]; then
      # Same versions, other bytes: a different busybox, or a .deb rebuilt under the same
      # version (a binNMU keeps the version of the source, not of the binary).
      echo "the toolchain differs from the pin although every package version matches:" >&2
      echo "  built $hash, pinned $pin (is $(command -v busybox) the busybox it was pinned with?)" >&2
      echo "re-pin with: $here/build-toolchain.sh   (then commit toolchain.nix)" >&2
      exit 1
    fi
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
    } >"$here/.toolchain.nix.tmp"
    mv "$here/.toolchain.nix.tmp" "$here/toolchain.nix"  # never a half-written pin
    ;;
esac
echo "$path"
