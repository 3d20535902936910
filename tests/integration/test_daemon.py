"""`provenance build` through a real nix-daemon, for each way the daemon's nix.conf can be set.

Through a daemon the sandbox options `build` passes are honoured only for a trusted user; an
untrusted user's builds follow the daemon's own nix.conf. So for every case the statement
must say which of the two was in force (`sandboxEnforcement`), or the build must be refused,
and a probe check that lists `/` inside its build shows the build really was sandboxed.

These tests start their own nix-daemons (one per nix.conf case, on a private socket) and
write the daemon's /etc/nix/nix.conf, so they need root and a private /etc/nix: they run
where scripts/nix-matrix.sh --daemon sets PROVENANCE_DAEMON_TESTS=1 (CI does, in trixie),
and are skipped everywhere else. The untrusted side runs the CLI as
PROVENANCE_DAEMON_TEST_USER, an account that is neither in nixbld nor trusted.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.doors.nix import Nix
from provenance.formats import keys
from tests.conftest import make_flake

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(
        os.environ.get("PROVENANCE_DAEMON_TESTS") != "1",
        reason="needs scripts/nix-matrix.sh --daemon (root, a private /etc/nix, nix-daemon)",
    ),
]
NIX_CONF = Path("/etc/nix/nix.conf")
# Directories of the root the daemon runs in that no sandbox shows: a build that sees one
# of them ran on the host's filesystem.
HOST_ONLY = {"home", "proj", "root", "usr", "var"}
SANDBOX_ROOT = {"build", "dev", "etc", "nix", "proc", "tmp"}  # `ls /` in a sandbox, no paths
USER = os.environ.get("PROVENANCE_DAEMON_TEST_USER", "")
BASE_CONF = "substituters =\n"
CASES = {
    # no nix.conf at all: Nix's (and Debian's) defaults, sandbox = true, fallback = true
    "none": None,
    "strict": BASE_CONF + "sandbox = true\nsandbox-fallback = false\n",
    "sandbox-off": BASE_CONF + "sandbox = false\n",
    # the daemon's own nix.conf turns the sandbox off; a trusted user's options must win
    "trusted-users": BASE_CONF + f"sandbox = false\ntrusted-users = root {USER}\n",
}
TRUSTED = "daemon-trusted-user"  # our options applied: the statement says we proved it
NIX_CONF_LABEL = "daemon-nix-conf"  # the daemon's nix.conf read: recorded, not proven
# (case, who) -> the label the statement must carry, or what the refusal (exit 3) says.
EXPECTED = {
    ("none", "root"): TRUSTED,
    ("strict", "root"): TRUSTED,
    ("sandbox-off", "root"): TRUSTED,
    ("trusted-users", "root"): TRUSTED,
    ("none", "user"): "refused: sandbox-fallback=True",
    ("strict", "user"): NIX_CONF_LABEL,
    ("sandbox-off", "user"): "refused: sandbox=False",
    ("trusted-users", "user"): TRUSTED,
}


def _user() -> str:
    name = os.environ.get("PROVENANCE_DAEMON_TEST_USER", "")
    if not name:
        pytest.fail("PROVENANCE_DAEMON_TESTS=1 but PROVENANCE_DAEMON_TEST_USER is not set")
    try:
        pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"no account {name!r} (scripts/nix-matrix.sh creates it)")
    return name


@pytest.fixture(scope="module", autouse=True)
def _system_nix_conf() -> Iterator[None]:
    """Give back /etc/nix/nix.conf as it was, whatever the cases wrote."""
    if os.geteuid() != 0 or not shutil.which("nix-daemon"):
        pytest.fail("the daemon tests need root and nix-daemon")
    saved = NIX_CONF.read_bytes() if NIX_CONF.exists() else None
    yield
    if saved is None:
        NIX_CONF.unlink(missing_ok=True)
    else:
        NIX_CONF.write_bytes(saved)


class Daemon:
    """A nix-daemon started with `conf` as the system nix.conf, on its own socket."""

    def __init__(self, conf: str | None) -> None:
        NIX_CONF.parent.mkdir(parents=True, exist_ok=True)
        if conf is None:
            NIX_CONF.unlink(missing_ok=True)
        else:
            NIX_CONF.write_text(conf)
        # Outside pytest's 0700 tmp dirs: the untrusted user must reach the socket.
        self.dir = Path(tempfile.mkdtemp(prefix="nix-daemon-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.socket = self.dir / "socket"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": "/root",
            "NIX_DAEMON_SOCKET_PATH": str(self.socket),
        }
        self.log = (self.dir / "log").open("wb")
        self.proc = subprocess.Popen(["nix-daemon"], env=env, stdout=self.log, stderr=self.log)
        for _ in range(100):
            if self.socket.is_socket():
                break
            time.sleep(0.1)
        else:
            self.stop()
            pytest.fail(f"nix-daemon did not start:\n{(self.dir / 'log').read_text()}")

    def client_env(self) -> dict[str, str]:
        return {"NIX_REMOTE": "daemon", "NIX_DAEMON_SOCKET_PATH": str(self.socket)}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon for the case named by the test's parameter (a key of CASES)."""
    d = Daemon(CASES[request.param])
    yield d
    d.stop()
    shutil.rmtree(d.dir, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the untrusted user owns (pytest's tmp_path is root's and 0700)."""
    d = Path(tempfile.mkdtemp(prefix="provenance-daemon-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _own(path: Path, name: str) -> None:
    user = pwd.getpwnam(name)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, user.pw_uid, user.pw_gid)


def _probe_flake(dest: Path) -> Path:
    # A fresh nonce each run: the root's store outlives the run, and a cached output would
    # describe the sandbox of an earlier build, not of this case's.
    nonce = uuid.uuid4().hex
    probe = f'{{ mk, tests }}: {{ probe = mk "probe" "echo {nonce} >/dev/null; busybox ls / > $out" {{ }}; }}'
    return make_flake(dest, extra_checks=probe)


def build(workdir: Path, daemon: Daemon, *, as_user: str | None) -> tuple[int, dict | None, str]:  # type: ignore[type-arg]
    """Run `provenance build --check probe --json` through `daemon`, as root or `as_user`."""
    repo = _probe_flake(workdir / "repo")
    key, _, _ = keys.generate(workdir / "keys")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.startswith(("GIT_", "NIX_CONFIG"))},
        **daemon.client_env(),
    }
    cmd = [
        sys.executable,
        "-m",
        "provenance",
        "build",
        str(repo),
        "--key",
        str(key),
        "--check",
        "probe",
        "--json",
    ]
    if as_user is not None:
        _own(workdir, as_user)
        env["HOME"] = pwd.getpwnam(as_user).pw_dir
        cmd = [
            "runuser",
            "-u",
            as_user,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            *cmd,
        ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=workdir)
    report = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
    return done.returncode, report, done.stderr


def recorded_nix(report: dict) -> dict:  # type: ignore[type-arg]
    lines = Path(report["bundle"]).read_text().splitlines()
    stmts = [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in lines if ln]
    (prov,) = [s for s in stmts if s["predicateType"] == "https://slsa.dev/provenance/v1"]
    return prov["predicate"]["buildDefinition"]["internalParameters"]["nix"]  # type: ignore[no-any-return]


def daemon_sandbox_paths(daemon: Daemon) -> list[str]:
    """The sandbox-paths the daemon builds an untrusted user's derivations with: its
    nix.conf and compiled-in defaults (Debian 13+ binds /bin/sh), not ours."""
    env = {"PATH": os.environ["PATH"], "HOME": "/root", "NIX_USER_CONF_FILES": ""}
    return sorted(Nix(env={**env, **daemon.client_env()}).config().sandbox_paths)


def seen_by_the_build(report: dict) -> set[str]:  # type: ignore[type-arg]
    (check,) = report["checks"]
    return set(Path(check["outputs"]["out"]["path"]).read_text().split())


def bundles(workdir: Path) -> list[Path]:
    return sorted((workdir / "repo").glob(".provenance/*.intoto.jsonl"))


# Every daemon nix.conf case, as root (always trusted) and as an account that is trusted
# only where trusted-users names it: the statement's label and sandbox claims must be true,
# or the build refused with nothing signed.
@pytest.mark.parametrize("who", ["root", "user"])
@pytest.mark.parametrize("daemon", list(CASES), indirect=True)
def test_each_daemon_nix_conf_as_root_and_as_a_user(
    daemon: Daemon, workdir: Path, who: str, request: pytest.FixtureRequest
) -> None:
    expected = EXPECTED[(request.node.callspec.params["daemon"], who)]
    code, report, err = build(workdir, daemon, as_user=_user() if who == "user" else None)
    if expected.startswith("refused: "):
        assert code == 3, err
        assert report is None and bundles(workdir) == [], "a refused build signed something"
        assert "ignores this user's options" in err and expected.removeprefix("refused: ") in err
        return
    assert code == 0, err
    assert report is not None
    recorded = recorded_nix(report)
    assert recorded["sandboxEnforcement"] == expected
    assert recorded["sandbox"] is True and recorded["sandboxFallback"] is False
    seen = seen_by_the_build(report)
    assert not seen & HOST_ONLY, f"the probe saw the host's filesystem: {sorted(seen)}"
    if expected == TRUSTED:
        # Our options were applied, sandbox-paths '' among them: even with sandbox = false
        # in the daemon's nix.conf, the build saw exactly the bare sandbox.
        assert recorded["sandboxPaths"] == []
        assert seen == SANDBOX_ROOT
        assert recorded["settings"]["substitute"] is False
    else:
        # The daemon's own sandbox paths are what the statement records, and exactly what
        # the build saw on top of the bare sandbox (a policy may refuse them: gate, verify).
        paths = daemon_sandbox_paths(daemon)
        assert sorted(recorded["sandboxPaths"]) == paths
        assert seen == SANDBOX_ROOT | {p.split("=")[0].strip("/").split("/")[0] for p in paths}
        assert (
            recorded["settings"]["builders"] == "" and recorded["settings"]["substitute"] is False
        )
