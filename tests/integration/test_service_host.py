"""The attestation service's parts that need no second Unix user, on the host (root, Nix
2.8, a local store): the tier rules of gate and verify over statements the real pipeline
signs; the mirror; the server's answers to bad input, to its own user, to SIGTERM and to a
readable key; socket activation; the client's errors; the install files.

The service itself, with real users and a real nix-daemon, is test_service.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.attest import pipeline as attest
from provenance.doors.nix import Nix
from provenance.errors import RefusedError, UsageError
from provenance.formats import keys
from provenance.formats.uris import SERVICE_BUILDER_ID
from provenance.policy import trust
from provenance.service import protocol
from provenance.service.mirror import Mirror, check_requester_repository
from tests.conftest import git, make_flake

pytestmark = pytest.mark.nix
ROOT = Path(__file__).parent.parent.parent
REQUESTER = {"uid": 1234, "pid": 99, "user": "agent", "repository": "/home/agent/proj"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _as_the_service_builds(repo: Path, key: Path) -> attest.BuildReport:
    """What the server runs for a request (server.Service.build), in this process."""
    builder = attest.Builder(
        SERVICE_BUILDER_ID, "isolated", {"requester": REQUESTER, "service": {"user": "svc"}}
    )
    req = attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key), builder=builder)
    return attest.build(req, Nix())


def _local_build(repo: Path, key: Path) -> attest.BuildReport:
    return attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())


@pytest.fixture
def trust_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(agent key, service key, a policy trusting both, the service's marked, isolated required)."""
    agent_key, agent_pub, _ = keys.generate(tmp_path / "agent")
    svc_key, svc_pub, _ = keys.generate(tmp_path / "svc")
    policy = tmp_path / "policy" / "provenance.toml"
    policy.parent.mkdir()
    trust.add_key(policy, "agent", agent_pub)
    trust.add_key(policy, "build-service", svc_pub, service=True)
    policy.write_text(
        policy.read_text().replace("[trust]\n", '[trust]\nrequire-tier = "isolated"\n')
    )
    return agent_key, svc_key, policy


def _gate(repo: Path, policy: Path) -> dict[str, object]:
    done = _cli("gate", str(repo), "--policy", str(policy), "--no-fetch", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# -- the tier: gate and verify -----------------------------------------------------------


def test_gate_runs_for_a_local_statement_and_skips_for_the_services(
    tmp_path: Path, trust_setup: tuple[Path, Path, Path]
) -> None:
    agent_key, svc_key, policy = trust_setup
    repo = make_flake(tmp_path / "repo")
    _local_build(repo, agent_key)
    verdict = _gate(repo, policy)
    assert verdict["skip"] is False
    assert "its tier is local (says 'local'" in str(verdict["reason"])
    assert "the policy requires isolated" in str(verdict["reason"])
    _as_the_service_builds(repo, svc_key)
    assert _gate(repo, policy)["skip"] is True
    # Without the requirement the local statement alone is enough: the rule is what blocks.
    relaxed = policy.with_name("relaxed.toml")
    relaxed.write_text(policy.read_text().replace('require-tier = "isolated"\n', ""))
    other = make_flake(tmp_path / "other")
    _local_build(other, agent_key)
    assert _gate(other, relaxed)["skip"] is True
    assert _gate(other, policy)["skip"] is False


def test_an_agents_key_cannot_make_a_statement_isolated(
    tmp_path: Path, trust_setup: tuple[Path, Path, Path]
) -> None:
    # The agent signs exactly what the service would: tier isolated, the service's builder
    # id, a requester. Its key is trusted, but not as a service key: it counts as local.
    agent_key, _, policy = trust_setup
    repo = make_flake(tmp_path / "repo")
    report = _as_the_service_builds(repo, agent_key)
    assert report.checks and all(c.status == "attested" for c in report.checks)
    verdict = _gate(repo, policy)
    assert verdict["skip"] is False
    assert "none of its signers is a service key" in str(verdict["reason"])


def test_verify_shows_the_tier_and_applies_the_requirement(
    tmp_path: Path, trust_setup: tuple[Path, Path, Path]
) -> None:
    agent_key, svc_key, policy = trust_setup
    repo = make_flake(tmp_path / "repo")
    _as_the_service_builds(repo, svc_key)
    done = _cli("verify", "--policy", str(policy), "--flake", str(repo), "--json")
    assert done.returncode == 0, done.stderr
    assert (
        "authentic/tier: isolated: signed by service key build-service; "
        "built for agent (uid 1234, pid 99)" in done.stderr
    )
    tiers = {a["tier"] for a in json.loads(done.stdout)["attestations"] if a["check"]}
    assert tiers == {"isolated"}
    local = make_flake(tmp_path / "local")
    _local_build(local, agent_key)
    done = _cli("verify", "--policy", str(policy), "--flake", str(local))
    assert done.returncode == 1
    assert "authentic/tier: local: says 'local'" in done.stderr
    assert "bound/environment: its tier is local" in done.stderr


def test_a_service_statement_records_who_asked_and_who_built(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    report = _as_the_service_builds(make_flake(tmp_path / "repo"), keypair[0])
    import base64  # noqa: PLC0415

    for line in report.lines:
        stmt = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if stmt["predicateType"] != "https://slsa.dev/provenance/v1":
            continue
        pred = stmt["predicate"]
        assert pred["runDetails"]["builder"]["id"] == SERVICE_BUILDER_ID
        internal = pred["buildDefinition"]["internalParameters"]
        assert internal["trustTier"] == "isolated"
        assert internal["requester"] == REQUESTER
        assert internal["service"] == {"user": "svc"}
    assert report.note_lines == report.lines  # nothing reused from an ancestor here
    assert report.superseded == ()


# -- the mirror --------------------------------------------------------------------------


def test_the_mirror_builds_a_clean_tree_of_exactly_the_commit(flake: Path, tmp_path: Path) -> None:
    commit = git(flake, "rev-parse", "HEAD")
    committed = (flake / "flake.nix").read_text()
    (flake / "flake.nix").write_text(committed + "# not committed\n")
    (flake / "untracked.txt").write_text("x")
    mirror = Mirror(tmp_path / "state")
    with mirror.checkout(str(flake), commit) as tree:
        assert (tree / "flake.nix").read_text() == committed
        assert not (tree / "untracked.txt").exists()
        assert git(tree, "status", "--porcelain") == ""
        assert git(tree, "rev-parse", "HEAD") == commit
        first = tree
    with mirror.checkout(str(flake), commit) as tree:
        assert tree == first  # made once, reused (a cache hit fetches nothing)


def test_a_half_made_work_tree_is_made_again(flake: Path, tmp_path: Path) -> None:
    commit = git(flake, "rev-parse", "HEAD")
    mirror = Mirror(tmp_path / "state")
    with mirror.checkout(str(flake), commit) as tree:
        pass
    # A service killed while making it leaves the directory without its .ready mark.
    tree.with_name(f"{commit}.ready").unlink()
    (tree / "flake.nix").write_text("half")
    (tree / "junk").write_text("junk")
    with mirror.checkout(str(flake), commit) as again:
        assert not (again / "junk").exists()
        assert (again / "flake.nix").read_text() == git(flake, "show", "HEAD:flake.nix") + "\n"
        assert git(again, "status", "--porcelain") == ""


def test_a_commit_the_repository_does_not_have(flake: Path, tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "state")
    with (
        pytest.raises(UsageError, match=f"commit {'1' * 40} is not in the repository"),
        mirror.checkout(str(flake), "1" * 40),
    ):
        pass


def test_old_work_trees_are_deleted(flake: Path, tmp_path: Path) -> None:
    first = git(flake, "rev-parse", "HEAD")
    (flake / "README").write_text("two")
    git(flake, "add", "README")
    git(flake, "commit", "-qm", "two")
    second = git(flake, "rev-parse", "HEAD")
    mirror = Mirror(tmp_path / "state", keep=1)
    with mirror.checkout(str(flake), first) as one:
        pass
    with mirror.checkout(str(flake), second) as two:
        assert two.is_dir()
    assert not one.exists() and two.exists()


def test_whose_repository_it_is(flake: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(flake)
    assert check_requester_repository(str(link), 0, "svc") == str(flake.resolve())
    with pytest.raises(RefusedError, match=r"belongs to uid 0, not to you \(uid 12345\)"):
        check_requester_repository(str(flake), 12345, "svc")
    with pytest.raises(UsageError, match="does not exist"):
        check_requester_repository(str(tmp_path / "none"), 0, "svc")
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is not a directory"):
        check_requester_repository(str(tmp_path / "file"), 0, "svc")


# -- the server ---------------------------------------------------------------------------


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.socket = tmp_path / "run" / "socket"
        self.state = tmp_path / "state"
        self.key, _, self.keyid = keys.generate(self.state / "key")
        self.socket.parent.mkdir()
        self.log = tmp_path / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        return [sys.executable, "-m", "provenance", "serve", "--socket", str(self.socket),
                "--state-dir", str(self.state)]  # fmt: skip

    def start(self, *wrap: str) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*wrap, *self.args()], stdout=log, stderr=log)
        for _ in range(200):
            if self.socket.is_socket() and self.ask(InfoAsk) is not None:
                return
            time.sleep(0.05)
        pytest.fail(self.log.read_text())

    def ask(self, payload: bytes) -> dict[str, object] | None:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return None
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            frames = []
            while (f := protocol.recv(s, protocol.MAX_RESPONSE)) is not None:
                frames.append(f)
        return frames[-1] if frames else None


def _frame(obj: dict[str, object]) -> bytes:
    data = json.dumps(obj).encode()
    return len(data).to_bytes(4, "big") + data


InfoAsk = _frame({"provenance": 1, "op": "info"})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    s.start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.terminate()
        s.proc.wait(timeout=30)


def test_the_service_tells_who_it_is(served: Served) -> None:
    answer = served.ask(InfoAsk)
    assert answer is not None and answer["type"] == "result"
    info = answer["info"]
    assert isinstance(info, dict)
    assert info["keyid"] == served.keyid and info["builderId"] == SERVICE_BUILDER_ID
    assert info["uid"] == os.getuid()


def test_the_service_refuses_its_own_user(served: Served, flake: Path) -> None:
    # Whoever runs as the service's user can read its key: nothing they ask is isolated.
    done = _cli("build", str(flake), "--service", str(served.socket))
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: the request comes from the service's own user (root), which can read the "
        "service's key: nothing it asks for would be isolated (ask as another user, or build "
        "locally with --key)"
    ]
    assert not (flake / ".provenance").exists()
    assert served.ask(InfoAsk) is not None


def test_garbage_gets_an_answer_and_the_service_goes_on(served: Served) -> None:
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\xff\xff\xff\xff" + b"\0" * 64, b"\0\0\0\x02[]"):
        answer = served.ask(junk)
        assert answer is not None and answer["type"] == "error", junk
    answer = served.ask(_frame({"provenance": 1, "op": "build", "repository": "/x", "commit": "y"}))
    assert answer is not None and answer["exitCode"] == 2
    assert "full commit id" in str(answer["message"])
    assert served.ask(InfoAsk) is not None


def test_a_client_that_says_nothing_is_let_go(served: Served) -> None:
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(served.socket))
        assert served.ask(InfoAsk) is not None  # one silent client blocks nobody


def test_sigterm_stops_it_and_removes_the_socket(served: Served) -> None:
    assert served.proc is not None
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    assert not served.socket.exists()
    assert "serve: stopped" in served.log.read_text()


def test_a_second_service_on_the_same_socket_is_refused(served: Served) -> None:
    done = subprocess.run(served.args(), capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert f"another service already listens at {served.socket}" in done.stderr


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    s = Served(tmp_path)
    s.key.chmod(0o640)
    done = subprocess.run(s.args(), capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 3
    assert "is readable by others or not the service user's (mode 640" in done.stderr


@pytest.mark.skipif(
    not shutil.which("systemd-socket-activate"), reason="no systemd-socket-activate"
)
def test_socket_activation(tmp_path: Path) -> None:
    s = Served(tmp_path)
    s.start("systemd-socket-activate", "--listen", str(s.socket))
    try:
        answer = s.ask(InfoAsk)
        assert answer is not None and answer["type"] == "result"
        assert "serving on" in s.log.read_text()
    finally:
        assert s.proc is not None
        s.proc.terminate()
        s.proc.wait(timeout=30)


# -- the client ---------------------------------------------------------------------------


def test_build_service_errors_are_one_line(flake: Path, tmp_path: Path) -> None:
    none = tmp_path / "none.sock"
    done = _cli("build", str(flake), "--service", str(none))
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        f"error: no attestation service at {none} (start it (`provenance serve`, "
        "docs/service.md), or unset PROVENANCE_SERVICE)"
    ]
    by_env = _cli("build", str(flake), env={"PROVENANCE_SERVICE": str(none)})
    assert by_env.returncode == 4 and f"no attestation service at {none}" in by_env.stderr
    dirty = _cli("build", str(flake), "--service", str(none), "--allow-dirty")
    assert dirty.returncode == 2 and "the service attests commits" in dirty.stderr
    (flake / "flake.nix").write_text((flake / "flake.nix").read_text() + "#\n")
    refused = _cli("build", str(flake), "--service", str(none))
    assert refused.returncode == 3 and "uncommitted changes: flake.nix" in refused.stderr


# -- installing it -----------------------------------------------------------------------


def _serve_options() -> set[str]:
    done = _cli("serve", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


def test_the_nixos_module_and_the_unit_files() -> None:
    for f in ("nix/nixos-module.nix", "flake.nix"):
        parsed = subprocess.run(["nix-instantiate", "--parse", str(ROOT / f)], capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert parsed.returncode == 0, parsed.stderr
    known = _serve_options()
    module = (ROOT / "nix" / "nixos-module.nix").read_text()
    unit = (ROOT / "nix" / "provenance.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    used = set(re.findall(r"--[a-z][a-z-]+", exec_start)) | set(
        re.findall(r'"(--[a-z][a-z-]+)"', module)
    )
    assert used and used <= known, used - known
    assert (
        "services.provenance" in module
        and "nixosModules.default" in (ROOT / "flake.nix").read_text()
    )
    socket_unit = (ROOT / "nix" / "provenance.socket").read_text()
    listen = re.findall(r"^ListenStream=(.*)$", socket_unit, re.M)
    assert listen == ["/run/provenance/socket"] and "--socket /run/provenance/socket" in exec_start
