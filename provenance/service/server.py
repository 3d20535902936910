"""`provenance serve`: attest other users' commits with a key they cannot read.

The service runs as its own Unix user and listens on a Unix socket. For each request it
reads who asks from the socket (SO_PEERCRED: uid and pid, filled in by the kernel), takes
the commit from the requester's repository into its own mirror (mirror.py), and runs the
very pipeline `provenance build` runs (attest/pipeline.py) on a clean work tree of that
commit, through the nix-daemon, in an environment of its own: nothing of the requester's
(`NIX_CONFIG`, `~/.config/nix`, `GIT_*`, the working directory) reaches it, because it is
another process of another user. It signs with its own key, records the requester and
itself in the statement (`internalParameters.requester` and `.service`), names its own
`builder.id` and the tier `isolated`, keeps the lines in its mirror's notes (its cache),
and hands the bundle and the note lines back; the client writes them into the requester's
repository (client.py), which the service never writes to.

Nothing is half-done: the pipeline signs only what it fully built, hashed and checked, and
writes the bundle and the note atomically; a service killed in the middle of a request
leaves no signed line anywhere, and a work tree it left half-made is made again. A client
that goes away does not stop the build: its statements land in the cache for next time.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.attest import pipeline
from provenance.doors.nix import Nix, default_nix_bin
from provenance.errors import ProvenanceError, RefusedError, UsageError
from provenance.formats import keys
from provenance.formats.uris import SERVICE_BUILDER_ID
from provenance.policy.tier import ISOLATED
from provenance.progress import Reporter
from provenance.service import protocol
from provenance.service.mirror import Mirror, check_requester_repository

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = 30.0  # seconds a client has to send its request once connected

# What of the service's own environment its nix and git see; everything else is dropped,
# and HOME, the XDG directories and git's configuration are the service's own.
_KEPT = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "NIX_REMOTE",
    "NIX_DAEMON_SOCKET_PATH",
    "NIX_CONFIG",
    "NIX_CONF_DIR",
    "NIX_USER_CONF_FILES",
    "NIX_STORE_DIR",
    "NIX_STATE_DIR",
    "NIX_LOG_DIR",
    "NIX_SSL_CERT_FILE",
    "SSL_CERT_FILE",
    "PROVENANCE_NIX",
    "PROVENANCE_LOGLEVEL",
)


def clean_environment(environ: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    env = {k: environ[k] for k in _KEPT if k in environ}
    env.setdefault("PATH", "/run/current-system/sw/bin:/usr/bin:/bin")
    for name, sub in (("CACHE", "cache"), ("CONFIG", "config"), ("DATA", "data")):
        env[f"XDG_{name}_HOME"] = str(state_dir / sub)
    env.update(
        HOME=str(state_dir),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="provenance service",
        GIT_AUTHOR_EMAIL="provenance@localhost",
        GIT_COMMITTER_NAME="provenance service",
        GIT_COMMITTER_EMAIL="provenance@localhost",
    )
    return env


@dataclass(frozen=True)
class ServeConfig:
    socket_path: Path
    state_dir: Path
    key_path: Path
    socket_mode: int = 0o666
    socket_group: int | None = None
    workers: int = 4  # requests built at once; more wait their turn
    keep_checkouts: int = 32  # work trees kept per repository (cache hits need one)


class _Stream(Reporter):
    """Relays progress to the client; a client that went away stops only the relaying."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.gone = False
        self._lock = threading.Lock()

    def send(self, frame: dict[str, Any]) -> None:
        with self._lock:
            if self.gone:
                return
            try:
                protocol.send(self.conn, frame)
            except OSError:
                self.gone = True

    def info(self, message: str) -> None:
        self.send({"type": "info", "message": message})

    def warn(self, message: str) -> None:
        self.send({"type": "warn", "message": message})

    def log_line(self, check: str, line: str) -> None:
        self.send({"type": "log", "check": check, "line": line})


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _result(report: pipeline.BuildReport, public_key: str) -> dict[str, Any]:
    return {
        "report": report.as_json(),
        "publicKey": public_key,
        "lines": list(report.lines),
        "noteLines": list(report.note_lines),
        "superseded": list(report.superseded),
    }


def _error(e: ProvenanceError) -> dict[str, Any]:
    return {"type": "error", "message": e.message, "hint": e.hint, "exitCode": e.exit_code}


class Service:
    def __init__(self, cfg: ServeConfig, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.say = say
        self.signer = load_service_key(cfg.key_path)
        self.public_key = self.signer.public.pem().decode()
        self.uid = os.getuid()
        self.user = _user_name(self.uid)
        self.identity = {"user": self.user, "uid": self.uid, "host": socket.gethostname()}
        self.mirror = Mirror(cfg.state_dir, cfg.keep_checkouts)
        self.slots = threading.BoundedSemaphore(cfg.workers)

    def handle(self, conn: socket.socket) -> None:
        """One connection: one request, its events, one final frame. Never raises."""
        stream = _Stream(conn)
        try:
            who = protocol.peer(conn)
        except OSError as e:
            self.say(f"a connection whose peer cannot be read ({e}): closed")
            return
        label = f"uid {who.uid} ({_user_name(who.uid)}) pid {who.pid}"
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            obj = protocol.recv(conn, protocol.MAX_REQUEST)
            if obj is None:
                self.say(f"{label}: closed the connection without a request")
                return
            call = protocol.parse_request(obj)
            conn.settimeout(None)
            if isinstance(call, protocol.InfoCall):
                final = {"type": "result", "info": self.info()}
            else:
                with self.slots:  # logged once it has a worker
                    self.say(f"{label}: build {call.repository} at {call.commit[:12]}")
                    report = self.build(call, who, stream)
                    final = {"type": "result", **_result(report, self.public_key)}
        except pipeline.ChecksFailedError as e:
            final = {**_error(e), **_result(e.report, self.public_key)}
        except TimeoutError:
            final = _error(UsageError(f"no request within {REQUEST_TIMEOUT:.0f} s"))
        except ProvenanceError as e:
            final = _error(e)
        except Exception as e:  # a bug must cost one request, never the service
            log.exception("request from %s failed", label)
            final = _error(
                ProvenanceError(f"internal error in the service: {type(e).__name__}: {e}")
            )
        stream.send(final)
        gone = " (the client had gone away)" if stream.gone else ""
        self.say(f"{label}: {final.get('message') or 'done'}{gone}")

    def info(self) -> dict[str, Any]:
        return {"keyid": self.signer.keyid, "builderId": SERVICE_BUILDER_ID, **self.identity}

    def build(
        self, call: protocol.BuildCall, who: protocol.Peer, stream: Reporter
    ) -> pipeline.BuildReport:
        if who.uid == self.uid:
            msg = (
                f"the request comes from the service's own user ({self.user}), which can read "
                "the service's key: nothing it asks for would be isolated"
            )
            raise RefusedError(msg, "ask as another user, or build locally with --key")
        repository = check_requester_repository(call.repository, who.uid, self.user)
        builder = pipeline.Builder(
            id=SERVICE_BUILDER_ID,
            tier=ISOLATED,
            recorded={
                "requester": {
                    "uid": who.uid,
                    "pid": who.pid,
                    "user": _user_name(who.uid),
                    "repository": call.repository,
                },
                "service": self.identity,
            },
        )
        with self.mirror.checkout(repository, call.commit) as tree:
            req = pipeline.BuildRequest(
                flake_dir=tree / call.subdir if call.subdir else tree,
                signer=self.signer,
                checks=call.checks,
                force=call.force,
                verify_deps=call.verify_deps,
                builder=builder,
            )
            return pipeline.build(req, Nix(default_nix_bin()), stream)


def load_service_key(path: Path) -> keys.Signer:
    """The service's key, which must be this user's and readable by nobody else."""
    signer = keys.load_signer(path)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        msg = (
            f"the service key {path} is readable by others or not the service user's "
            f"(mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}): whoever reads it can sign"
        )
        raise RefusedError(msg, f"chown {_user_name(os.getuid())} {path} && chmod 600 {path}")
    return signer


def _activated(environ: Mapping[str, str]) -> bool:
    """Did systemd pass us the listening socket (fd 3; sd_listen_fds(3))?"""
    return environ.get("LISTEN_FDS") == "1" and environ.get("LISTEN_PID") == str(os.getpid())


def _listen(cfg: ServeConfig, activated: bool) -> tuple[socket.socket, bool]:
    """The listening socket: systemd's (socket activation), else one bound at the path."""
    if activated:
        return socket.socket(fileno=3), False
    path = cfg.socket_path
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            msg = f"{path} exists and is not a socket"
            raise UsageError(msg, "remove it, or pass another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a dead service's socket
        else:
            msg = f"another service already listens at {path}"
            raise UsageError(msg, "stop it first, or pass another --socket")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as e:
        msg = f"cannot listen at {path}: {e.strerror}"
        raise UsageError(msg, "the service's user must be able to create files there") from None
    os.chmod(path, cfg.socket_mode)
    if cfg.socket_group is not None:
        os.chown(path, -1, cfg.socket_group)
    sock.listen(64)
    return sock, True


def serve(
    cfg: ServeConfig, say: Callable[[str], None], ready: Callable[[], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT. The process's environment becomes `clean_environment`."""
    activated = _activated(os.environ)
    env = clean_environment(os.environ, cfg.state_dir)
    os.environ.clear()
    os.environ.update(env)
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    service = Service(cfg, say)
    sock, bound = _listen(cfg, activated)
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()
        sock.close()  # wakes accept()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    say(
        f"serving on {cfg.socket_path} as {service.user} (uid {service.uid}), "
        f"keyid {service.signer.keyid[:16]}, state {cfg.state_dir}"
    )
    if ready is not None:
        ready()
    try:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                if stop.is_set():
                    break
                raise
            threading.Thread(target=_serve_one, args=(service, conn), daemon=True).start()
    finally:
        if bound:
            cfg.socket_path.unlink(missing_ok=True)
        say("stopped")


def _serve_one(service: Service, conn: socket.socket) -> None:
    with conn:
        service.handle(conn)
        _close_gently(conn)


def _close_gently(conn: socket.socket) -> None:
    """Say we are done, then read what the client still sent (a second or a MiB at most):
    closing with unread bytes resets the connection, and the client would lose the final
    frame that says what was wrong with them."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        left = 1 << 20
        while left > 0 and (chunk := conn.recv(min(left, 65536))):
            left -= len(chunk)
    except OSError:
        pass
