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
BASE_CONF = "substituters =\n"
CASES = {
    # no nix.conf at all: Nix's (and Debian's) defaults, sandbox = true, fallback = true
    "none": None,
    "strict": BASE_CONF + "sandbox = true\nsandbox-fallback = false\n",
    "sandbox-off": BASE_CONF + "sandbox = false\n",
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
    d = Daemon(request.param)
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


def assert_sandboxed(report: dict) -> None:  # type: ignore[type-arg]
    (check,) = report["checks"]
    seen = set(Path(check["outputs"]["out"]["path"]).read_text().split())
    assert {"dev", "nix", "proc"} <= seen, seen
    assert not seen & HOST_ONLY, f"the probe saw the host's filesystem: {sorted(seen)}"


# -- root: a trusted user, whose options the daemon applies --------------------------------


@pytest.mark.parametrize("daemon", list(CASES.values()), ids=list(CASES), indirect=True)
def test_root_is_trusted_and_its_sandbox_options_are_in_force(
    daemon: Daemon, workdir: Path
) -> None:
    code, report, err = build(workdir, daemon, as_user=None)
    assert code == 0, err
    assert report is not None
    recorded = recorded_nix(report)
    assert recorded["sandboxEnforcement"] == "daemon-trusted-user"
    assert recorded["sandbox"] is True and recorded["sandboxFallback"] is False
    # With sandbox = false in the daemon's nix.conf this is what proves the forwarded
    # option was applied: the statement's claim and the build's view agree.
    assert_sandboxed(report)


# -- an untrusted user: the daemon's nix.conf decides --------------------------------------


@pytest.mark.parametrize("daemon", [CASES["strict"]], ids=["strict"], indirect=True)
def test_untrusted_user_with_a_strict_daemon_is_labelled_daemon_nix_conf(
    daemon: Daemon, workdir: Path
) -> None:
    code, report, err = build(workdir, daemon, as_user=_user())
    assert code == 0, err
    assert report is not None
    assert recorded_nix(report)["sandboxEnforcement"] == "daemon-nix-conf"
    assert_sandboxed(report)


@pytest.mark.parametrize("daemon", [CASES["none"]], ids=["none"], indirect=True)
def test_untrusted_user_with_the_default_fallback_is_refused(daemon: Daemon, workdir: Path) -> None:
    # Without a nix.conf the daemon may fall back to building unsandboxed.
    code, report, err = build(workdir, daemon, as_user=_user())
    assert code == 3, err
    assert report is None
    assert "ignores this user's options" in err and "sandbox-fallback=True" in err


@pytest.mark.parametrize("daemon", [CASES["sandbox-off"]], ids=["sandbox-off"], indirect=True)
def test_untrusted_user_with_the_sandbox_off_is_refused(daemon: Daemon, workdir: Path) -> None:
    code, report, err = build(workdir, daemon, as_user=_user())
    assert code == 3, err
    assert report is None
    assert "ignores this user's options" in err and "sandbox=False" in err


def _trusting(conf: str) -> str:
    return conf + f"trusted-users = root {os.environ.get('PROVENANCE_DAEMON_TEST_USER', '')}\n"


@pytest.mark.parametrize(
    "daemon", [_trusting(CASES["sandbox-off"])], ids=["trusted-users"], indirect=True
)
def test_a_user_in_trusted_users_gets_its_options_applied(daemon: Daemon, workdir: Path) -> None:
    # The daemon's own nix.conf turns the sandbox off; the trusted user's `sandbox = true`
    # must win, and the statement says so.
    code, report, err = build(workdir, daemon, as_user=_user())
    assert code == 0, err
    assert report is not None
    assert recorded_nix(report)["sandboxEnforcement"] == "daemon-trusted-user"
    assert_sandboxed(report)
