"""Benchmark a cache hit through the attestation service against a local cache hit.

Budget (issue 15): `provenance build --service SOCKET` on an attested commit costs at most
1.5x `provenance build --key KEY` on an attested commit. Both run as the same unprivileged
agent, through the same nix-daemon, on two clones of the same commit of the example flake;
runs are interleaved.

Needs root, nix-daemon, setpriv and useradd (it makes a service user and an agent user
with fixed uids, far from any Nix build user's): run it in the trixie root,

    bash scripts/nix-matrix.sh trixie --daemon -- \\
      'bash scripts/setup.sh >&2 && .venv/bin/python bench/bench_service.py --runs 9'
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import NIX_CONFIG, header, row
from provenance.example import materialise

SERVICE, SERVICE_UID = "provenance-bench-svc", 62025
AGENT, AGENT_UID = "provenance-bench-agent", 62026
PY = sys.executable
CONF = f"substituters =\nsandbox = true\nsandbox-fallback = false\ntrusted-users = root {SERVICE}\n"


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        sys.exit(f"{cmd} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]


def user(name: str, uid: int) -> None:
    try:
        if pwd.getpwnam(name).pw_uid == uid:
            return
        run(["userdel", "-r", name])
    except KeyError:
        pass
    subprocess.run(["groupdel", name], capture_output=True, check=False)
    run(["useradd", "-u", str(uid), "-U", "-m", name])


def as_user(name: str, *args: str, **env: str) -> list[str]:
    pw = pwd.getpwnam(name)
    base = {
        "PATH": os.environ["PATH"],
        "HOME": pw.pw_dir,
        "LANG": "C.UTF-8",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        **env,
    }
    return [
        "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--",
        "env", "-i", *(f"{k}={v}" for k, v in base.items()), *args,
    ]  # fmt: skip


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    run(cmd, cwd="/")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run it as root in the trixie root (see the docstring)")
    nix_conf = Path("/etc/nix/nix.conf")
    saved = nix_conf.read_bytes() if nix_conf.exists() else None
    work = Path(tempfile.mkdtemp(prefix="bench-service-", dir="/tmp"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        user(AGENT, AGENT_UID)
        nix_conf.parent.mkdir(exist_ok=True)
        nix_conf.write_text(CONF)
        daemon_sock = work / "daemon.sock"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": "/root",
            "NIX_DAEMON_SOCKET_PATH": str(daemon_sock),
        }
        procs.append(
            subprocess.Popen(
                ["nix-daemon"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        while not daemon_sock.is_socket():
            time.sleep(0.05)
        nix_env = {
            "NIX_REMOTE": "daemon",
            "NIX_DAEMON_SOCKET_PATH": str(daemon_sock),
            "NIX_CONFIG": NIX_CONFIG,
        }

        state, sock = work / "state", work / "run" / "socket"
        if pwd.getpwall() and any(
            p.pw_name == SERVICE and p.pw_uid != SERVICE_UID for p in pwd.getpwall()
        ):
            run(["userdel", SERVICE])
            subprocess.run(["groupdel", SERVICE], capture_output=True, check=False)
        run([PY, "-m", "provenance", "serve", "--setup", "--user", SERVICE, "--uid", str(SERVICE_UID),
             "--state-dir", str(state), "--socket", str(sock)])  # fmt: skip
        serve = as_user(SERVICE, PY, "-m", "provenance", "serve", "--socket", str(sock), "--state-dir", str(state),
                        HOME=str(state), **nix_env)  # fmt: skip
        procs.append(
            subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        )
        while not sock.is_socket():
            time.sleep(0.05)

        local, remote = work / "local", work / "remote"
        materialise(local)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
            run([*git, "-C", str(local), *cmd])
        run(["git", "clone", "-q", str(local), str(remote)])
        keys = work / "keys"
        run([PY, "-m", "provenance", "keygen", "--out-dir", str(keys)])
        for p in [local, remote, keys, *local.rglob("*"), *remote.rglob("*"), *keys.iterdir()]:
            os.lchown(p, AGENT_UID, AGENT_UID)

        local_hit = as_user(
            AGENT,
            PY,
            "-m",
            "provenance",
            "build",
            str(local),
            "--key",
            str(keys / "provenance.key"),
            "-q",
            **nix_env,
        )
        service_hit = as_user(
            AGENT, PY, "-m", "provenance", "build", str(remote), "--service", str(sock), "-q"
        )
        print("attesting both clones once (not timed)...", file=sys.stderr)
        timed(local_hit)
        timed(service_hit)
        samples: list[list[float]] = [[], []]
        for _ in range(args.runs):
            samples[0].append(timed(local_hit))
            samples[1].append(timed(service_hit))
        header(
            f"cache hit, example flake (1 check), as an unprivileged agent; {args.runs} runs interleaved"
        )
        _, here = row("provenance build --key (local, through the daemon)", samples[0])
        _, there = row("provenance build --service (the service)", samples[1])
        print(f"\nratio: {there / here:.2f}x (budget 1.5x)")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        if saved is None:
            nix_conf.unlink(missing_ok=True)
        else:
            nix_conf.write_bytes(saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
