#!/usr/bin/env bash
# nix-matrix.sh: run a command against a modern Debian Nix, in a debootstrapped root.
#
#   nix-matrix.sh SUITE [options] [--] [COMMAND...]
#
# SUITE is a Debian suite (trixie: nix-bin 2.26.x, sid: the newest nix-bin). The root is
# built idempotently under $NIX_MATRIX_DIR/chroot-SUITE (debootstrap --variant=minbase,
# then nix-bin, busybox-static, git, python3, python3-venv, file, ca-certificates, the
# nixbld group and build users the way scripts/setup.sh makes them), then COMMAND runs in
# it as root, in /proj, where the project is mounted. COMMAND defaults to
# `bash scripts/test.sh`; it is a single shell string when one argument is given.
#
# How it runs: `unshare --mount --pid --fork` (private propagation), bind-mounts the root
# onto itself, mounts a fresh /proc, rbinds /dev (with /dev/pts, /dev/shm) and /sys,
# mounts the project, then pivot_root's into the root and detaches the host's tree.
# pivot_root, not chroot(2): the kernel refuses CLONE_NEWUSER to a chrooted process
# (clone(2), EPERM), and Nix's sandbox needs a user namespace. Every mount lives in that
# private namespace and vanishes with it; the PID namespace means every process the
# command leaves behind (a nix-daemon, say) is killed when it exits.
#
# The project (default: the current directory) is mounted at /proj as an overlay: the
# host's tree is the read-only lower layer, writes land in a per-suite upper layer that is
# emptied at each run, and /proj/.venv is a per-suite directory kept between runs (so the
# host's own .venv, built for another Python, is never seen). --rw bind-mounts the project
# read-write instead (it then creates PROJECT/.venv as the mount point).
#
# Options:
#   --project DIR     the project to mount (default: .)
#   --rw              bind the project read-write instead of the overlay
#   --daemon          start nix-daemon inside, export NIX_REMOTE=daemon, stop it afterwards
#   --user NAME       run COMMAND as NAME (created if missing; not in nixbld, not trusted)
#   --with-browser    also install chromium (scripts/install-test-deps.sh wants it)
#   --packages "P.."  extra Debian packages to install in the root
#   --mirror URL      Debian mirror (default: the first URIs:/deb line of the host's apt sources)
#   --setup-only      build or refresh the root, run nothing
#   --rebuild-root    delete this suite's root and build it again
#   --keep-env VAR    pass VAR from the host into the root (repeatable); CI is always passed
#   --bind SRC:DST    also bind-mount host path SRC at DST inside (repeatable; DST may be
#                     under /proj, e.g. a prebuilt, gitignored toolchain tree; DST:ro binds
#                     it read-only). A git worktree's common .git dir is bound read-only.
#
# Environment: NIX_MATRIX_DIR (default: /var/cache/provenance-nix-matrix), NIX_MATRIX_TIMINGS
# (a file that step timings are appended to, default $NIX_MATRIX_DIR/timings.log),
# NIX_MATRIX_KEEP_TMP=1 (keep this run's /tmp, $ROOT/var/lib/nix-matrix/tmp-run-PID; by
# default each run gets an empty /tmp that is deleted when it ends).
# Needs root, debootstrap (installed with apt-get when missing), util-linux, overlayfs.
# Exit status: the command's, or 2 for a usage error, 3 when the root cannot be built.
set -euo pipefail

SELF=$(readlink -f "$0")
NIX_MATRIX_DIR=${NIX_MATRIX_DIR:-/var/cache/provenance-nix-matrix}
TIMINGS=${NIX_MATRIX_TIMINGS:-$NIX_MATRIX_DIR/timings.log}
TEST_USER=provenance-user
# nginx: the HTTP binary cache of tests/integration/test_cache.py (issue 14).
BASE_PACKAGES="nix-bin busybox-static git python3 python3-venv file ca-certificates nginx"
# sid's (and a snapshot mirror's) Release files carry Valid-Until; a mirror that lags, or a
# clock that runs ahead, makes apt refuse them. The signatures are still checked.
APT_OPTS=(-o Acquire::Check-Valid-Until=false)

log() { printf '[nix-matrix] %s\n' "$*" >&2; }
die() { log "error: $*"; exit "${2:-2}"; }
now() { date +%s.%N; }
timed() {  # timed LABEL CMD...: run CMD, log and record how long it took
  local label=$1 t0 t1 rc=0
  shift
  t0=$(now)
  "$@" || rc=$?
  t1=$(now)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  log "$label: ${secs}s (rc=$rc)"
  printf '%s\t%s\t%s\t%ss\trc=%s\n' "$(date -u +%FT%TZ)" "${SUITE:-?}" "$label" "$secs" "$rc" >>"$TIMINGS" || true
  return "$rc"
}

host_mirror() {
  local m=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  printf '%s' "$m"
}

# ---- the inside half: runs in the new mount+PID namespace, as its PID 1 -----------------
inside() {
  local root=$1 proj=$2 mode=$3 daemon=$4 user=$5 cmd=$6
  shift 6
  local state=$root/var/lib/nix-matrix
  mount --bind "$root" "$root"
  # This run's own, empty /tmp (removed after the run).
  [ -n "${NIX_MATRIX_RUN_TMP:-}" ] && mount --bind "$NIX_MATRIX_RUN_TMP" "$root/tmp"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mkdir -p "$root/proj"
  if [ "$mode" = overlay ]; then
    rm -rf "$state/upper" "$state/work"
    mkdir -p "$state/upper" "$state/work" "$state/venv"
    mount -t overlay overlay \
      -o "lowerdir=$proj,upperdir=$state/upper,workdir=$state/work" "$root/proj"
    # Hide the host's .venv (built for the host's Python) behind this suite's own.
    mkdir -p "$root/proj/.venv"
    mount --bind "$state/venv" "$root/proj/.venv"
  else
    mount --bind "$proj" "$root/proj"
    mkdir -p "$state/venv" "$root/proj/.venv"
    mount --bind "$state/venv" "$root/proj/.venv"
  fi
  # Extra binds (--bind SRC:DST), after the project so they may land inside /proj.
  local b src dst
  while IFS= read -r b; do
    [ -n "$b" ] || continue
    src=${b%%:*} dst=${b#*:} ro=""
    case $dst in *:ro) dst=${dst%:ro} ro=1 ;; esac
    if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "$(dirname "$root$dst")"; touch "$root$dst"; fi
    mount --bind "$src" "$root$dst"
    [ -z "$ro" ] || mount -o remount,bind,ro "$root$dst"
  done <<<"${NIX_MATRIX_BINDS:-}"
  if [ "$daemon" = 1 ]; then
    # A private, writable /etc/nix for this run: tests/integration/test_daemon.py writes the
    # daemon's nix.conf for each case it tests, and none of that may outlive the run.
    mkdir -p "$root/etc/nix" "$state/etc-nix"
    rm -rf "$state/etc-nix"/* && cp -a "$root/etc/nix/." "$state/etc-nix/"
    mount -t tmpfs -o mode=0755 tmpfs "$root/etc/nix"
    cp -a "$state/etc-nix/." "$root/etc/nix/"
  fi
  cd "$root"
  mkdir -p .nix-matrix-oldroot
  pivot_root . .nix-matrix-oldroot
  cd /
  umount -l /.nix-matrix-oldroot
  rmdir /.nix-matrix-oldroot
  local envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8 TERM="${TERM:-dumb}" NIX_MATRIX_SUITE="$SUITE")
  local v
  for v in "$@"; do
    if [ -n "${!v+x}" ]; then envs+=("$v=${!v}"); fi
  done
  local wrapped
  wrapped='cd /proj && '"$cmd"
  if [ "$daemon" = 1 ]; then
    envs+=(NIX_REMOTE=daemon PROVENANCE_DAEMON_TESTS=1 PROVENANCE_DAEMON_TEST_USER="$TEST_USER")
    # The daemon is this shell's child; kill exactly that pid when the command is done.
    wrapped='rm -f /nix/var/nix/daemon-socket/socket
      env -u NIX_REMOTE nix-daemon >/var/log/nix-daemon.log 2>&1 &
      daemon_pid=$!
      for _ in $(seq 1 100); do [ -S /nix/var/nix/daemon-socket/socket ] && break; sleep 0.1; done
      [ -S /nix/var/nix/daemon-socket/socket ] || { echo "[nix-matrix] nix-daemon did not start" >&2; cat /var/log/nix-daemon.log >&2; exit 1; }
      echo "[nix-matrix] nix-daemon pid $daemon_pid" >&2
      '"$(if [ -n "$user" ]; then printf 'runuser -u %q -- env HOME=/home/%q bash -c %q' "$user" "$user" "$wrapped"; else printf 'bash -c %q' "$wrapped"; fi)"'
      rc=$?
      kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
      exit $rc'
    exec /usr/sbin/chroot / /usr/bin/env -i "${envs[@]}" /bin/bash -c "$wrapped"
  fi
  if [ -n "$user" ]; then
    exec /usr/sbin/chroot / /usr/bin/env -i "${envs[@]}" HOME="/home/$user" \
      /usr/sbin/runuser -u "$user" -- /bin/bash -c "$wrapped"
  fi
  exec /usr/sbin/chroot / /usr/bin/env -i "${envs[@]}" /bin/bash -c "$wrapped"
}

if [ "${1:-}" = __inside ]; then
  shift
  SUITE=$1
  shift
  inside "$@"
  exit 1  # not reached: inside execs
fi

# ---- the outside half ---------------------------------------------------------------
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
SUITE=$1
shift
case $SUITE in
  *[!a-z0-9-]* | "") die "suite must be a Debian suite name such as trixie or sid" ;;
esac

PROJECT=.
MODE=overlay
DAEMON=0
RUN_USER=""
WITH_BROWSER=0
EXTRA_PACKAGES=""
MIRROR=${NIX_MATRIX_MIRROR:-}
SETUP_ONLY=0
REBUILD_ROOT=0
KEEP_ENV=(CI)
while [ $# -gt 0 ]; do
  case $1 in
    --project) PROJECT=$2; shift 2 ;;
    --rw) MODE=rw; shift ;;
    --daemon) DAEMON=1; shift ;;
    --user) RUN_USER=$2; shift 2 ;;
    --with-browser) WITH_BROWSER=1; shift ;;
    --packages) EXTRA_PACKAGES="$EXTRA_PACKAGES $2"; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --rebuild-root) REBUILD_ROOT=1; shift ;;
    --keep-env) KEEP_ENV+=("$2"); shift 2 ;;
    --bind)
      case $2 in /*:/*) ;; *) die "--bind wants HOST_PATH:PATH_INSIDE, both absolute" ;; esac
      [ -e "${2%%:*}" ] || die "--bind: no ${2%%:*}"
      BINDS="${BINDS:-}$(readlink -f "${2%%:*}"):${2#*:}"$'\n'; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  CMD='bash scripts/test.sh'
elif [ $# -eq 1 ]; then
  CMD=$1
else
  CMD=$(printf '%q ' "$@")
fi
case $RUN_USER in *[!a-z0-9_-]*) die "--user must be a plain user name" ;; esac

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mounts, pivot_root)"
PROJECT=$(readlink -f "$PROJECT")
[ -d "$PROJECT" ] || die "no project directory $PROJECT"
case $PROJECT in *[,:]*) [ "$MODE" = overlay ] && die "overlay cannot mount a path with ',' or ':'; use --rw" ;; esac
MIRROR=${MIRROR:-$(host_mirror)}
# A git worktree's .git is a file naming a directory elsewhere (the main checkout's .git):
# mount that read-only at the same path, so git and nix inside see a repository.
if [ -f "$PROJECT/.git" ] && command -v git >/dev/null 2>&1; then
  common=$(git -C "$PROJECT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  # ... and the worktree at its own path too: the common dir's worktrees/NAME points there.
  case $common in "" | "$PROJECT"/*) ;; *) BINDS="${BINDS:-}$common:$common:ro"$'\n'"$PROJECT:$PROJECT:ro"$'\n' ;; esac
fi

ROOT=$NIX_MATRIX_DIR/chroot-$SUITE
STATE=$ROOT/var/lib/nix-matrix
mkdir -p "$NIX_MATRIX_DIR"
exec 9>"$NIX_MATRIX_DIR/.chroot-$SUITE.lock"
if ! flock -n 9; then
  log "waiting for another build or run of $SUITE to finish"
  flock 9
fi

nix_pkg_version() { in_root dpkg-query -W -f '${Version}' nix-bin 2>/dev/null || echo '?'; }

mounted_under() { findmnt -rn -o TARGET | awk -v r="$1" 'index($0, r) == 1' | head -n 1; }

in_root() {  # run a provisioning command in the root (no project, no pivot needed)
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

provision_network() {
  # Name resolution and the host's extra CAs (an egress proxy's, say), for apt and pip.
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp -L /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
  fi
  # No package may start a service in the root: it shares the host's network (nginx's would
  # take port 80). The cache tests start nginx themselves, on free loopback ports.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
  # apt inside (scripts/install-test-deps.sh runs a plain `apt-get update`): same Valid-Until relief.
  printf 'Acquire::Check-Valid-Until "false";\n' >"$ROOT/etc/apt/apt.conf.d/99nix-matrix"
  # pip: certificate bundle and timeout; the host's local wheel dirs do not exist inside.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 180\ndisable-pip-version-check = true\n' \
    >"$ROOT/etc/pip.conf"
}

build_root() {
  if [ "$REBUILD_ROOT" = 1 ] && [ -e "$ROOT" ]; then
    [ -z "$(mounted_under "$ROOT")" ] || die "something is mounted under $ROOT: $(mounted_under "$ROOT")" 3
    log "deleting $ROOT (--rebuild-root)"
    rm -rf --one-file-system "$ROOT"
  fi
  if [ ! -e "$STATE/debootstrap.done" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
      log "installing debootstrap with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    } || die "cannot install debootstrap" 3
    [ -n "$MIRROR" ] || die "no Debian mirror: pass --mirror URL" 3
    local tmp=$ROOT.partial
    [ -z "$(mounted_under "$tmp")" ] || die "something is mounted under $tmp" 3
    rm -rf --one-file-system "$tmp"
    log "debootstrap --variant=minbase $SUITE (mirror from the host's apt sources)"
    timed "debootstrap $SUITE" debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" \
      >"$NIX_MATRIX_DIR/debootstrap-$SUITE.log" 2>&1 \
      || { tail -n 20 "$NIX_MATRIX_DIR/debootstrap-$SUITE.log" >&2; die "debootstrap failed" 3; }
    rm -rf --one-file-system "$ROOT"
    mv "$tmp" "$ROOT"
    mkdir -p "$STATE"
    touch "$STATE/debootstrap.done"
  fi
  provision_network
  local want
  want=$(printf '%s\n' $BASE_PACKAGES $EXTRA_PACKAGES $([ "$WITH_BROWSER" = 1 ] && echo chromium) | sort -u | tr '\n' ' ')
  if [ "$(cat "$STATE/packages.done" 2>/dev/null)" != "$want" ]; then
    # Only add packages: a list that shrank keeps what is installed (compare as sets).
    local have
    have=$(cat "$STATE/packages.done" 2>/dev/null || true)
    local missing=""
    local p
    for p in $want; do case " $have " in *" $p "*) ;; *) missing="$missing $p" ;; esac; done
    if [ -n "$missing" ]; then
      log "apt-get install$missing"
      timed "apt-get update $SUITE" in_root apt-get "${APT_OPTS[@]}" update -qq || die "apt-get update failed in the root" 3
      timed "apt-get install $SUITE:$missing" in_root apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends $missing \
        >"$NIX_MATRIX_DIR/apt-$SUITE.log" 2>&1 \
        || { tail -n 20 "$NIX_MATRIX_DIR/apt-$SUITE.log" >&2; die "apt-get install failed in the root" 3; }
      in_root apt-get clean
      in_root update-ca-certificates >/dev/null 2>&1 || true
    fi
    printf '%s' "$(printf '%s\n' $have $want | sort -u | tr '\n' ' ')" >"$STATE/packages.done"
  else
    # New host CAs since the last run still land in the bundle.
    in_root update-ca-certificates >/dev/null 2>&1 || true
  fi
  # The nixbld group and build users as scripts/setup.sh creates them, but with uids of
  # their own: before each build Nix kills every process of its build user, and a Nix on
  # the host (or in another root) running as the same uid would kill this root's builders
  # ("failed due to signal 9"). The PID namespace hides the host from us, not us from it.
  local base
  base=$((40000 + $(printf '%s' "$SUITE" | cksum | cut -d' ' -f1) % 200 * 100))
  if [ "$(in_root id -u nixbld1 2>/dev/null)" != "$((base + 1))" ]; then
    log "creating the nixbld group and build users nixbld1..10 (uids $((base + 1))..$((base + 10)))"
    for i in $(seq 1 10); do in_root userdel "nixbld$i" 2>/dev/null || true; done
    in_root groupdel nixbld 2>/dev/null || true
    in_root groupadd -g "$base" nixbld
    for i in $(seq 1 10); do
      in_root useradd -u "$((base + i))" -g nixbld -G nixbld -d /var/empty -s /usr/sbin/nologin "nixbld$i"
    done
  fi
  # An unprivileged account (not in nixbld, not trusted) for the daemon tests.
  if ! in_root getent passwd "$TEST_USER" >/dev/null; then
    in_root useradd -m -s /bin/bash "$TEST_USER"
  fi
  if [ -n "$RUN_USER" ] && ! in_root getent passwd "$RUN_USER" >/dev/null; then
    log "creating user $RUN_USER"
    in_root useradd -m -s /bin/bash "$RUN_USER"
  fi
}

timed "prepare root $SUITE" build_root || exit $?
if [ "$SETUP_ONLY" = 1 ]; then
  log "$ROOT: $(du -sh --one-file-system "$ROOT" | cut -f1), nix-bin $(nix_pkg_version)"
  exit 0
fi
# The lock stays held for the run: runs of one suite share its overlay upper layer and its
# venv, so they take turns; different suites run side by side.

log "running in $SUITE (nix-bin $(nix_pkg_version)): $CMD"
rc=0
export NIX_MATRIX_BINDS="${BINDS:-}"
export NIX_MATRIX_RUN_TMP=$STATE/tmp-run-$$
mkdir -p "$NIX_MATRIX_RUN_TMP" && chmod 1777 "$NIX_MATRIX_RUN_TMP"
cleanup_tmp() {
  [ "${NIX_MATRIX_KEEP_TMP:-0}" = 1 ] && { log "kept $NIX_MATRIX_RUN_TMP"; return; }
  # Store paths in there are read-only: make them writable first, never following links.
  find "$NIX_MATRIX_RUN_TMP" -xdev -type d ! -perm -u+w -exec chmod u+w {} + 2>/dev/null || true
  rm -rf --one-file-system "$NIX_MATRIX_RUN_TMP"
}
trap cleanup_tmp EXIT
timed "run $SUITE" unshare --mount --pid --fork --propagation private -- \
  "$SELF" __inside "$SUITE" "$ROOT" "$PROJECT" "$MODE" "$DAEMON" "$RUN_USER" "$CMD" "${KEEP_ENV[@]}" || rc=$?
exit "$rc"
