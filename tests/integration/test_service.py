"""The attestation service with real Unix users and a real nix-daemon (issue 15).

`provenance serve --setup` creates the service's user and key; the service runs as that
user and builds through a nix-daemon that trusts it; agents are ordinary users created
with useradd, neither trusted by the daemon nor able to read the key. Everything an agent
does here it does as itself (setpriv), the way an agent on such a machine would.

Needs root, useradd and nix-daemon, and a Python that other users can run: these tests
run where scripts/nix-matrix.sh --daemon sets PROVENANCE_DAEMON_TESTS=1 (CI: the trixie
root, .ci/run), and are skipped elsewhere. The uids are fixed and far from any Nix build
user's: Nix kills every process of a build user's uid before a build, and a Nix on the
host (or in another root) with a build user of the same uid would kill ours.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance.doors.nix import current_system
from provenance.formats import keys
from provenance.formats.uris import SERVICE_BUILDER_ID
from tests.conftest import NIX_CONFIG, make_flake
from tests.integration.test_daemon import NIX_CONF, Daemon

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(
        os.environ.get("PROVENANCE_DAEMON_TESTS") != "1",
        reason="needs scripts/nix-matrix.sh --daemon (root, useradd, nix-daemon)",
    ),
]
SERVICE_USER, SERVICE_UID = "provenance-svc15", 62015
AGENTS = {"provenance-agent15": 62016, "provenance-agent15b": 62017}
AGENT, AGENT2 = list(AGENTS)
DAEMON_CONF = (
    "substituters =\nsandbox = true\nsandbox-fallback = false\n"
    f"trusted-users = root {SERVICE_USER}\n"
)
PY = sys.executable


def slow(seconds: int) -> str:
    """A check that takes `seconds` to build (for requests cut off in the middle)."""
    return f'{{ mk, tests }}: {{ slow = mk "slow" "busybox sleep {seconds}; echo slow > $out" {{ }}; }}'


SLOW = slow(4)


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def _free(name: str, uid: int) -> None:
    """Make way for user `name` with `uid`: remove an earlier run's account that holds either."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(["groupdel", name])  # a group an interrupted run left without its user
    for holder in {name, *(p.pw_name for p in pwd.getpwall() if p.pw_uid == uid)}:
        try:
            if pwd.getpwnam(holder).pw_uid == uid and holder == name:
                continue
        except KeyError:
            continue
        assert holder.startswith("provenance-"), f"uid {uid} belongs to {holder}"
        _run(["userdel", "-r", holder])
        _run(["groupdel", holder])


def _ensure_user(name: str, uid: int, *, home: bool) -> None:
    _free(name, uid)
    try:
        if pwd.getpwnam(name).pw_uid == uid:
            return
        _run(["userdel", "-r", name])
    except KeyError:
        pass
    _run(["groupdel", name])
    done = _run(["useradd", "-u", str(uid), "-U", *(["-m"] if home else ["-M"]), name])
    assert done.returncode == 0, done.stderr


def _setpriv(user: str) -> list[str]:
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]


def _env(**extra: str) -> list[str]:
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "agent",
        "GIT_AUTHOR_EMAIL": "agent@example.invalid",
        "GIT_COMMITTER_NAME": "agent",
        "GIT_COMMITTER_EMAIL": "agent@example.invalid",
        **extra,
    }
    return ["env", "-i", *(f"{k}={v}" for k, v in env.items())]


def as_agent(
    user: str, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    home = pwd.getpwnam(user).pw_dir
    cmd = [*_setpriv(user), *_env(HOME=home, **(env or {})), *args]
    return _run(cmd, cwd="/proj", timeout=600, **kw)


def provenance(
    user: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return as_agent(user, PY, "-m", "provenance", *args, env=env)


# A client that speaks the protocol by hand, as an agent can: garbage, unknown commits.
RAW = r"""
import json, socket, sys
from provenance.service import protocol
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
if sys.argv[2] == "json":
    protocol.send(s, json.loads(sys.argv[3]))
else:
    s.sendall(bytes.fromhex(sys.argv[3]))
    s.shutdown(socket.SHUT_WR)
while (frame := protocol.recv(s, protocol.MAX_RESPONSE)) is not None:
    print(json.dumps(frame))
"""


def raw(user: str, socket_path: Path, mode: str, payload: str) -> list[dict[str, Any]]:
    done = as_agent(user, PY, "-c", RAW, str(socket_path), mode, payload)
    assert done.returncode == 0, done.stderr
    return [json.loads(ln) for ln in done.stdout.splitlines()]


class Service:
    """`provenance serve` as the service user, on its own socket."""

    def __init__(self, root: Path, daemon: Daemon) -> None:
        self.root = root
        self.state = root / "state"
        self.socket = root / "run" / "socket"
        self.daemon = daemon
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.setup: dict[str, Any] = {}

    def start(self) -> None:
        env = _env(HOME=str(self.state), NIX_CONFIG=NIX_CONFIG, **self.daemon.client_env())
        cmd = [*_setpriv(SERVICE_USER), *env, PY, "-m", "provenance", "serve"]
        cmd += ["--socket", str(self.socket), "--state-dir", str(self.state)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd="/proj")
        for _ in range(200):
            if self.socket.is_socket() and self.answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"the service did not start:\n{self.log()}")

    def answers(self) -> bool:
        try:
            frames = raw(AGENT, self.socket, "json", '{"provenance": 1, "op": "info"}')
        except AssertionError:
            return False
        return bool(frames) and frames[-1].get("type") == "result"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # exactly the service's pid (setpriv and env exec)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mirror_notes(self) -> str:
        out = []
        for repo in self.state.glob("mirrors/*/repo.git"):
            out.append(
                _run(
                    ["git", "-C", str(repo), "notes", "--ref", "refs/notes/provenance", "list"]
                ).stdout
            )
        return "".join(out)


@pytest.fixture(scope="module")
def world() -> Iterator[Service]:
    if os.geteuid() != 0 or not shutil.which("nix-daemon") or not shutil.which("setpriv"):
        pytest.fail("the service tests need root, nix-daemon and setpriv")
    saved = NIX_CONF.read_bytes() if NIX_CONF.exists() else None
    for name, uid in AGENTS.items():
        _ensure_user(name, uid, home=True)
    root = Path(tempfile.mkdtemp(prefix="provenance-service-", dir="/tmp"))
    root.chmod(0o755)
    daemon = Daemon(DAEMON_CONF)
    service = Service(root, daemon)
    _free(SERVICE_USER, SERVICE_UID)
    setup = _run(
        [
            PY,
            "-m",
            "provenance",
            "serve",
            "--setup",
            "--user",
            SERVICE_USER,
            "--uid",
            str(SERVICE_UID),
            "--state-dir",
            str(service.state),
            "--socket",
            str(service.socket),
            "--json",
        ],
        cwd="/proj",
    )
    assert setup.returncode == 0, setup.stderr
    service.setup = json.loads(setup.stdout)
    service.start()
    yield service
    service.stop()
    daemon.stop()
    shutil.rmtree(daemon.dir, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    if saved is None:
        NIX_CONF.unlink(missing_ok=True)
    else:
        NIX_CONF.write_bytes(saved)


def agent_repo(user: str, *, extra_checks: str | None = None) -> Path:
    """A fresh fixture flake (its own drvPaths) in a directory the agent owns."""
    d = Path(tempfile.mkdtemp(prefix=f"{user}-", dir="/tmp"))
    d.chmod(0o755)
    repo = make_flake(d / "repo", extra_checks=extra_checks)
    pw = pwd.getpwnam(user)
    for p in [d, *d.rglob("*")]:
        os.lchown(p, pw.pw_uid, pw.pw_gid)
    return repo


def statements(bundle: Path) -> list[dict[str, Any]]:
    lines = [ln for ln in bundle.read_text().splitlines() if ln]
    return [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in lines]


def provenance_of(bundle: Path) -> list[dict[str, Any]]:
    return [s for s in statements(bundle) if s["predicateType"] == "https://slsa.dev/provenance/v1"]


def build(
    user: str, repo: Path, world: Service, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return provenance(user, "build", str(repo), "--service", str(world.socket), *args, env=env)


# -- the key and a build ------------------------------------------------------------------


def test_setup_made_a_key_only_the_service_user_can_read(world: Service) -> None:
    key = Path(world.setup["key"])
    st = key.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (SERVICE_UID, 0o600)
    for who in AGENTS:
        done = as_agent(who, "cat", str(key))
        assert done.returncode != 0 and "Permission denied" in done.stderr
        signs = provenance(who, "build", "/tmp", "--key", str(key))
        assert signs.returncode == 2 and "Permission denied" in signs.stderr, signs.stderr
    # Run again, setup keeps the key (and the user): an agent cannot get a fresh one made.
    again = _run(
        [
            PY,
            "-m",
            "provenance",
            "serve",
            "--setup",
            "--user",
            SERVICE_USER,
            "--state-dir",
            str(world.state),
            "--socket",
            str(world.socket),
            "--json",
        ],
        cwd="/proj",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["keyid"] == world.setup["keyid"]
    assert json.loads(again.stdout)["createdKey"] is False


def test_a_build_through_the_service_attests_with_the_services_key(world: Service) -> None:
    repo = agent_repo(AGENT)
    done = build(AGENT, repo, world, "--json")
    assert done.returncode == 0, done.stderr + world.log()
    report = json.loads(done.stdout)
    assert report["keyid"] == world.setup["keyid"]
    assert {c["status"] for c in report["checks"]} == {"attested"}
    # The bundle and the note are in the agent's own repository, written by the agent.
    bundle = Path(report["bundle"])
    assert bundle.is_relative_to(repo) and bundle.stat().st_uid == AGENTS[AGENT]
    notes = as_agent(
        AGENT, "git", "-C", str(repo), "notes", "--ref", "refs/notes/provenance", "show", "HEAD"
    )
    assert notes.stdout.splitlines() == bundle.read_text().splitlines()
    for stmt in provenance_of(bundle):
        pred = stmt["predicate"]
        internal = pred["buildDefinition"]["internalParameters"]
        assert pred["runDetails"]["builder"]["id"] == SERVICE_BUILDER_ID
        assert internal["trustTier"] == "isolated"
        assert internal["requester"]["uid"] == AGENTS[AGENT]
        assert internal["requester"]["user"] == AGENT
        assert isinstance(internal["requester"]["pid"], int) and internal["requester"]["pid"] > 1
        assert internal["requester"]["repository"] == str(repo)
        assert (
            internal["service"]["user"] == SERVICE_USER
            and internal["service"]["uid"] == SERVICE_UID
        )
        assert internal["nix"]["sandboxEnforcement"] == "daemon-trusted-user"
        assert pred["buildDefinition"]["externalParameters"]["source"]["dirty"] is False
    # The same JSON shape as a local build (the agent's own key, through the daemon).
    key_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    keys.generate(key_dir)
    for p in [key_dir, *key_dir.iterdir()]:
        os.lchown(p, AGENTS[AGENT], AGENTS[AGENT])
    local = provenance(
        AGENT,
        "build",
        str(agent_repo(AGENT)),
        "--key",
        str(key_dir / "provenance.key"),
        "--json",
        env=world.daemon.client_env(),
    )
    if local.returncode == 0:
        mine = json.loads(local.stdout)
        assert set(mine) == set(report)
        assert [set(c) for c in mine["checks"]] == [set(c) for c in report["checks"]]
    else:  # Debian's nix.conf default binds /bin/sh for an untrusted user: refused locally
        assert local.returncode == 3, local.stderr
    # verify shows the tier, and passes with the service's public key.
    policy = world.root / f"policy-{uuid.uuid4().hex}.toml"
    trust = _run(
        [
            PY,
            "-m",
            "provenance",
            "trust",
            "add",
            "build-service",
            world.setup["pub"],
            "--service",
            "--policy",
            str(policy),
        ],
        cwd="/proj",
    )
    assert trust.returncode == 0, trust.stderr
    policy.chmod(0o644)
    verified = provenance(AGENT, "verify", "--policy", str(policy), "--flake", str(repo))
    assert verified.returncode == 0, verified.stderr
    assert (
        f"authentic/tier: isolated: signed by service key build-service; built for {AGENT}"
        in verified.stderr
    )


def test_a_cache_hit_through_the_service(world: Service) -> None:
    repo = agent_repo(AGENT)
    assert build(AGENT, repo, world).returncode == 0
    again = build(AGENT, repo, world, "--json")
    assert again.returncode == 0, again.stderr
    assert {c["status"] for c in json.loads(again.stdout)["checks"]} == {"cached"}
    assert "already attested" in again.stderr


def test_a_failing_check_through_the_service(world: Service) -> None:
    # As a local build: exit 1, the failed check is never attested, the others are, and the
    # client still writes their lines.
    repo = agent_repo(AGENT, extra_checks='{ mk, tests }: { broken = mk "broken" "exit 1" { }; }')
    done = build(AGENT, repo, world)
    assert done.returncode == 1, done.stderr
    assert "check(s) failed: broken; the others were attested" in done.stderr
    (bundle,) = (repo / ".provenance").glob("*.intoto.jsonl")
    checks = {
        s["predicate"]["buildDefinition"]["externalParameters"]["check"]
        for s in provenance_of(bundle)
    }
    assert checks == {"det", "chain"}
    notes = as_agent(
        AGENT, "git", "-C", str(repo), "notes", "--ref", "refs/notes/provenance", "show", "HEAD"
    )
    assert notes.stdout.splitlines() == bundle.read_text().splitlines()


def test_gate_runs_for_a_local_statement_when_the_policy_requires_isolated(world: Service) -> None:
    repo = agent_repo(AGENT)
    key_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    _, agent_pub, _ = keys.generate(key_dir)
    for p in [key_dir, *key_dir.iterdir()]:
        os.lchown(p, AGENTS[AGENT], AGENTS[AGENT])
    policy = world.root / f"gate-{uuid.uuid4().hex}.toml"
    for args in (["agent", str(agent_pub)], ["build-service", world.setup["pub"], "--service"]):
        assert (
            _run(
                [PY, "-m", "provenance", "trust", "add", *args, "--policy", str(policy)],
                cwd="/proj",
            ).returncode
            == 0
        )
    text = policy.read_text().replace("[trust]\n", '[trust]\nrequire-tier = "isolated"\n', 1)
    # The agent's own builds go through the daemon untrusted: Debian's default /bin/sh bind.
    text += '\n[environment]\nallowed-sandbox-paths = ["/bin/sh=/usr/bin/bash-static"]\n'
    policy.write_text(text)
    policy.chmod(0o644)
    local = provenance(
        AGENT,
        "build",
        str(repo),
        "--key",
        str(key_dir / "provenance.key"),
        env=world.daemon.client_env(),
    )
    assert local.returncode == 0, local.stderr
    gate = provenance(AGENT, "gate", str(repo), "--policy", str(policy), "--no-fetch", "--json")
    verdict = json.loads(gate.stdout)
    assert verdict["skip"] is False
    assert "its tier is local" in verdict["reason"] and "requires isolated" in verdict["reason"]
    assert build(AGENT, repo, world).returncode == 0
    gate = provenance(AGENT, "gate", str(repo), "--policy", str(policy), "--no-fetch", "--json")
    assert json.loads(gate.stdout)["skip"] is True, gate.stdout


# -- what the agent cannot change -------------------------------------------------------


def test_the_agents_hostile_nix_config_changes_nothing_that_is_signed(world: Service) -> None:
    hostile = Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    hostile.chmod(0o777)
    hook = hostile / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {hostile}/ran-$$\nexit 0\n")
    hook.chmod(0o755)
    conf = "\n".join(
        [
            f"build-hook = {hook}",
            f"pre-build-hook = {hook}",
            f"post-build-hook = {hook}",
            "sandbox = false",
            "builders = ssh://evil x86_64-linux",
        ]
    )
    home = Path(pwd.getpwnam(AGENT).pw_dir)
    (home / ".config" / "nix").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "nix" / "nix.conf").write_text(conf + "\n")
    try:
        clean = build(AGENT, agent_repo(AGENT), world, "--json")
        assert clean.returncode == 0, clean.stderr
        attacked = build(AGENT, agent_repo(AGENT), world, "--json", env={"NIX_CONFIG": conf})
        assert attacked.returncode == 0, attacked.stderr
    finally:
        shutil.rmtree(home / ".config" / "nix")
    assert list(hostile.glob("ran-*")) == [], "a hook of the agent's ran"
    honest = provenance_of(Path(json.loads(clean.stdout)["bundle"]))
    for stmt in provenance_of(Path(json.loads(attacked.stdout)["bundle"])):
        nix = stmt["predicate"]["buildDefinition"]["internalParameters"]["nix"]
        assert nix["sandbox"] is True and nix["sandboxPaths"] == []
        assert nix["settings"]["pre-build-hook"] == "" and nix["settings"]["post-build-hook"] == ""
        assert nix["settings"]["builders"] == ""
        # Exactly what the service records without any hostile configuration.
        assert nix == honest[0]["predicate"]["buildDefinition"]["internalParameters"]["nix"]
        assert stmt["predicate"]["buildDefinition"]["internalParameters"]["outputCheck"] == "built"


def test_an_output_the_agent_built_first_is_rebuilt_and_compared(world: Service) -> None:
    # The agent may build (or, if it could, place) a check's output in the store before it
    # asks: the service does not take it as its own build.
    repo = agent_repo(AGENT)
    nix_env = {"NIX_CONFIG": NIX_CONFIG, **world.daemon.client_env()}
    attr = f"{repo}#checks.{current_system()}.det.drvPath"
    drv = as_agent(
        AGENT,
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "eval",
        "--raw",
        attr,
        env=nix_env,
    )
    assert drv.returncode == 0, drv.stderr
    pre = as_agent(AGENT, "nix-store", "--realise", drv.stdout, env=nix_env)
    assert pre.returncode == 0, pre.stderr
    done = build(AGENT, repo, world, "--json", "--check", "det")
    assert done.returncode == 0, done.stderr
    (check,) = json.loads(done.stdout)["checks"]
    assert check["outputCheck"] == "rebuilt-and-compared"


# -- bad requests: each a clear error, and the service keeps serving ------------------------


def _still_serving(world: Service) -> None:
    assert world.proc is not None and world.proc.poll() is None, world.log()
    assert world.answers()


def test_a_commit_the_repository_does_not_have(world: Service) -> None:
    repo = agent_repo(AGENT)
    ask = {"provenance": 1, "op": "build", "repository": str(repo), "commit": "0" * 40}
    (frame,) = raw(AGENT, world.socket, "json", json.dumps(ask))
    assert frame["type"] == "error" and frame["exitCode"] == 2
    assert frame["message"] == f"commit {'0' * 40} is not in the repository {repo}"
    _still_serving(world)


def test_a_dirty_tree_is_refused(world: Service) -> None:
    repo = agent_repo(AGENT)
    (repo / "flake.nix").write_text((repo / "flake.nix").read_text() + "\n# edited\n")
    done = build(AGENT, repo, world)
    assert done.returncode == 3 and "uncommitted changes: flake.nix" in done.stderr
    allow = build(AGENT, repo, world, "--allow-dirty")
    assert allow.returncode == 2 and "the service attests commits" in allow.stderr
    # Asking the service itself for a dirty tree is not a request it knows.
    head = as_agent(AGENT, "git", "-C", str(repo), "rev-parse", "HEAD").stdout.strip()
    ask = {
        "provenance": 1,
        "op": "build",
        "repository": str(repo),
        "commit": head,
        "allowDirty": True,
    }
    (frame,) = raw(AGENT, world.socket, "json", json.dumps(ask))
    assert frame["exitCode"] == 2 and "unknown field(s): allowDirty" in frame["message"]
    _still_serving(world)


def test_a_repository_the_service_cannot_read(world: Service) -> None:
    repo = agent_repo(AGENT)
    repo.chmod(0o700)
    done = build(AGENT, repo, world)
    assert done.returncode == 2, done.stderr
    assert f"the service (user {SERVICE_USER}) cannot read the repository {repo}" in done.stderr
    assert done.stderr.count("\n") == 1  # one line, no traceback
    _still_serving(world)


def test_another_users_repository_is_refused(world: Service) -> None:
    theirs = agent_repo(AGENT2)
    head = as_agent(AGENT2, "git", "-C", str(theirs), "rev-parse", "HEAD").stdout.strip()
    ask = {"provenance": 1, "op": "build", "repository": str(theirs), "commit": head}
    (frame,) = raw(AGENT, world.socket, "json", json.dumps(ask))
    assert frame["exitCode"] == 3 and f"belongs to uid {AGENTS[AGENT2]}" in frame["message"]
    mirror = world.state / "mirrors" / hashlib.sha256(str(theirs).encode()).hexdigest()[:32]
    assert not mirror.exists()  # refused before anything was fetched
    _still_serving(world)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("00000005" + b"hello".hex(), "not JSON"),
        ("ffffffff" + "00" * 16, "over the 65536-byte limit"),
        ("0000", "in the middle of a frame header"),
        ("00000010" + b"{}".hex(), "in the middle of a frame"),
        ("00000002" + b"[]".hex(), "not a JSON object"),
        ("0000000e" + b'{"op":"build"}'.hex(), "protocol version None"),
    ],
    ids=["not-json", "huge", "short-header", "short-body", "not-object", "no-version"],
)
def test_garbage_on_the_socket(world: Service, payload: str, says: str) -> None:
    frames = raw(AGENT, world.socket, "bytes", payload)
    assert frames and frames[-1]["type"] == "error", frames
    assert says in frames[-1]["message"]
    _still_serving(world)


def test_a_client_that_disconnects_mid_request(world: Service) -> None:
    repo = agent_repo(AGENT, extra_checks=SLOW)
    cmd = [
        *_setpriv(AGENT),
        *_env(HOME=pwd.getpwnam(AGENT).pw_dir),
        PY,
        "-m",
        "provenance",
        "build",
        str(repo),
        "--service",
        str(world.socket),
        "--check",
        "slow",
    ]
    client = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd="/proj")
    assert client.stderr is not None
    for line in client.stderr:
        if "slow: building" in line:
            break
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=30)
    for _ in range(600):  # the build goes on; the service notices the client is gone
        if "(the client had gone away)" in world.log():
            break
        time.sleep(0.1)
    assert "(the client had gone away)" in world.log()
    _still_serving(world)
    again = build(AGENT, repo, world, "--check", "slow", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["checks"][0]["status"] == "cached"  # the work was kept


def test_two_agents_at_once(world: Service) -> None:
    repos = {who: agent_repo(who, extra_checks=slow(10)) for who in AGENTS}
    before = len(world.log())
    procs = {
        who: subprocess.Popen(
            [
                *_setpriv(who),
                *_env(HOME=pwd.getpwnam(who).pw_dir),
                PY,
                "-m",
                "provenance",
                "build",
                str(repo),
                "--service",
                str(world.socket),
                "--check",
                "slow",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/proj",
        )
        for who, repo in repos.items()
    }
    outs = {who: p.communicate(timeout=600) for who, p in procs.items()}
    for who, (out, err) in outs.items():
        assert procs[who].returncode == 0, err
        (stmt,) = provenance_of(Path(json.loads(out)["bundle"]))
        assert (
            stmt["predicate"]["buildDefinition"]["internalParameters"]["requester"]["user"] == who
        )
    # Both requests had a worker before either was done: they were built side by side.
    pids = {str(p.pid) for p in procs.values()}
    events = [
        ("build" if ": build " in ln else "done")
        for ln in world.log()[before:].splitlines()
        if any(f" pid {pid}: " in ln for pid in pids)
        and (": build " in ln or ln.endswith(": done"))
    ]
    assert events == ["build", "build", "done", "done"], world.log()


def test_the_service_killed_mid_request_signs_nothing_half_done(world: Service) -> None:
    repo = agent_repo(AGENT, extra_checks=SLOW)
    cmd = [
        *_setpriv(AGENT),
        *_env(HOME=pwd.getpwnam(AGENT).pw_dir),
        PY,
        "-m",
        "provenance",
        "build",
        str(repo),
        "--service",
        str(world.socket),
        "--check",
        "slow",
    ]
    client = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd="/proj")
    assert client.stderr is not None
    seen = []
    for line in client.stderr:
        seen.append(line)
        if "slow: building" in line:
            break
    world.kill()
    rest = client.stderr.read()
    assert client.wait(timeout=60) == 4, "".join(seen) + rest
    assert "the attestation service closed the connection before it answered" in rest
    assert not (repo / ".provenance").exists() or not list(
        (repo / ".provenance").glob("*.intoto.jsonl")
    )
    notes = as_agent(
        AGENT, "git", "-C", str(repo), "notes", "--ref", "refs/notes/provenance", "list"
    )
    assert notes.stdout == ""
    head = as_agent(AGENT, "git", "-C", str(repo), "rev-parse", "HEAD").stdout.strip()
    assert head not in world.mirror_notes()  # the service kept no line either
    world.start()  # on the same state: the mirror and its work tree are reused
    done = build(AGENT, repo, world, "--check", "slow", "--json")
    assert done.returncode == 0, done.stderr + world.log()
    assert json.loads(done.stdout)["checks"][0]["status"] == "attested"
