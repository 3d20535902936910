"""The one place that starts child processes.

`nix.py` and `git.py` are the doors to their tools; both go through `run` so that
logging, missing-binary errors and line streaming behave the same everywhere.
No other module imports `subprocess` (a ruff banned-API rule enforces it).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Processes started ahead of their ask (`start_ahead`), by what would make a `run` of them
# the same run: the argv, the environment it gets and the directory it starts in.
_Key = tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]
_AHEAD: dict[_Key, subprocess.Popen[bytes]] = {}
_AHEAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Completed:
    cmd: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def signal(self) -> str | None:
        """The signal that killed the process (`SIGXFSZ (25)`), or None when it exited.

        subprocess reports a death by signal N as returncode -N; the tool printed nothing
        about it (it had no chance), so callers must say it themselves.
        """
        if self.returncode >= 0:
            return None
        number = -self.returncode
        try:
            return f"{signal.Signals(number).name} ({number})"
        except ValueError:
            return f"signal {number}"


def run(
    cmd: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: bytes | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> Completed:
    """Run `cmd`, capture stdout (bytes) and stderr (text); never raises on exit status.

    Raises FileNotFoundError when the binary is missing: callers turn that into their
    own error with an install hint. With `on_stderr_line`, stderr is streamed line by
    line while the process runs (build progress) and still returned whole.
    """
    log.debug("run: %s", shlex.join(cmd))
    ahead = _adopt(cmd, env, cwd) if stdin is None and on_stderr_line is None else None
    if ahead is not None:
        log.debug("run: adopted the process started ahead")
        try:
            out, err = ahead.communicate()
        except BaseException:  # ^C: its own process group did not get the SIGINT
            _kill(ahead)
            raise
        return Completed(cmd, ahead.returncode, out, err.decode(errors="replace"))
    if on_stderr_line is None:
        done = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
        return Completed(cmd, done.returncode, done.stdout, done.stderr.decode(errors="replace"))

    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )
    out_chunks: list[bytes] = []

    def _drain_stdout() -> None:
        assert proc.stdout is not None
        out_chunks.append(proc.stdout.read())

    reader = threading.Thread(target=_drain_stdout, daemon=True)
    reader.start()
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    err_lines: list[str] = []
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        err_lines.append(line)
        on_stderr_line(line)
    returncode = proc.wait()
    reader.join()
    return Completed(cmd, returncode, b"".join(out_chunks), "\n".join(err_lines))


def start_ahead(
    cmd: list[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> bool:
    """Start `cmd` now, for a later `run` of exactly it to take over (launch.py).

    Only a `run` with the same argv, the same environment (`env`, or os.environ as it is
    then) and the same directory adopts it, so its answer is the one that `run` would
    have got by starting it itself, a little later; anything else runs anew. One not
    adopted is killed at exit. False when it could not be started: the later `run`
    starts it again, and says what is wrong.

    Only for a question whose answer when started is as good as later (an evaluation of a
    pinned commit, `nix --version`): never one asked under a lock, or after a write it
    must see (a note read before the union, a fetch before the read).
    """
    key = _key(cmd, env, cwd)
    try:
        started = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # Its own process group, so that a kill reaches what it started too: nix's
            # fetcher runs git, git runs git-remote-http, and those outlive a killed nix
            # holding its pipes (a never-answering remote kept us from exiting).
            process_group=0,
        )
    except OSError:
        return False
    log.debug("ahead: %s", shlex.join(cmd))
    with _AHEAD_LOCK:
        if not _AHEAD:
            atexit.register(_kill_unadopted)
        old = _AHEAD.pop(key, None)
        _AHEAD[key] = started
    if old is not None:
        _kill(old)
    return True


def _key(cmd: list[str], env: Mapping[str, str] | None, cwd: str | None) -> _Key:
    environ = os.environ if env is None else env
    return tuple(cmd), tuple(sorted(environ.items())), os.path.abspath(cwd or os.curdir)


def _adopt(
    cmd: list[str], env: Mapping[str, str] | None, cwd: str | None
) -> subprocess.Popen[bytes] | None:
    if not _AHEAD:  # the common case: nothing was started ahead
        return None
    with _AHEAD_LOCK:
        return _AHEAD.pop(_key(cmd, env, cwd), None)


def _kill(p: subprocess.Popen[bytes]) -> None:
    """Kill `p` and its process group; wait for `p` only, never for its pipes to close
    (a descendant that left the group may hold them)."""
    if p.returncode is None:  # not reaped yet, so its pid (the group's id) is not reused
        with contextlib.suppress(OSError):  # the group is gone already
            os.killpg(p.pid, signal.SIGKILL)
    for pipe in (p.stdout, p.stderr):
        if pipe is not None:
            pipe.close()
    p.wait()


def _kill_unadopted() -> None:
    with _AHEAD_LOCK:
        left = list(_AHEAD.values())
        _AHEAD.clear()
    for p in left:
        _kill(p)
