"""A real HTTP binary cache for the tests: Debian's nginx serving a temp directory.

Started on a free loopback port with a config of its own (prefix, pid, logs and temp
paths in the test's directory), uploads accepted through nginx's DAV module
(`dav_methods PUT`) unless `writable=False`, and stopped by the fixture that started it.
Under CI=true a missing nginx fails the test: scripts/install-test-deps.sh installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFIG = """daemon off;
master_process on;
worker_processes 1;
{user}
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {base}/access.log;
  client_body_temp_path {base}/tmp/body;
  proxy_temp_path {base}/tmp/proxy;
  fastcgi_temp_path {base}/tmp/fastcgi;
  uwsgi_temp_path {base}/tmp/uwsgi;
  scgi_temp_path {base}/tmp/scgi;
  types {{ text/x-nix-narinfo narinfo; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
    client_max_body_size 0;
    location / {{
      {dav}
    }}
  }}
}}
"""
DAV = "dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but nginx is not installed: the HTTP cache tests must run")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Nginx:
    base: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        log = self.base / "access.log"
        return log.read_text() if log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(base: Path, *, writable: bool = True) -> Nginx:
    binary = nginx_binary()
    root = base / "root"
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    # As root the workers would run as nobody and could not write the temp root.
    user = "user root root;" if os.geteuid() == 0 else ""
    for _ in range(5):  # another process may take the port between probe and bind
        port = free_port()
        conf = base / "nginx.conf"
        conf.write_text(
            CONFIG.format(base=base, root=root, port=port, user=user, dav=DAV if writable else "")
        )
        process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return Nginx(base, root, port, process)
            time.sleep(0.05)
        err = (
            process.stderr.read().decode() if process.poll() is not None and process.stderr else ""
        )
        Nginx(base, root, port, process).stop()
        if "Address already in use" not in err:
            msg = f"nginx did not start: {err or (base / 'error.log').read_text()}"
            raise AssertionError(msg)
    msg = "nginx: no free port after 5 tries"
    raise AssertionError(msg)
