"""`provenance build --service SOCKET`: the same build, with the work and the key the service's.

The client runs as the requester and does only what the requester may do itself: it finds
the repository, HEAD and the tree's state exactly as a local build does (a dirty tree is
refused: the service attests commits, never a work tree), sends the request, relays the
service's progress to the reporter, and writes what comes back (the bundle, and the note
lines unioned into `refs/notes/provenance`) into the requester's own repository through
the same code a local build writes with. It never sees a private key; every line it writes
must verify against the public key the service sends (and whose keyid its report names),
so altering them breaks their signatures.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from provenance.attest import pipeline
from provenance.errors import (
    AttestationError,
    KeyFileError,
    RemoteError,
    ServiceError,
    VerificationError,
)
from provenance.formats import dsse, keys
from provenance.progress import Reporter
from provenance.service import protocol


@dataclass(frozen=True)
class ServiceBuildRequest:
    socket_path: Path
    flake_dir: Path
    checks: tuple[str, ...] | None = None
    output: Path | None = None
    force: bool = False
    attach_note: bool = True
    verify_deps: bool = False


_HINT = "start it (`provenance serve`, docs/service.md), or unset PROVENANCE_SERVICE"


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        sock.close()
        msg = f"no attestation service at {path}"
        raise ServiceError(msg, _HINT) from None
    except ConnectionRefusedError:
        sock.close()
        msg = f"nothing listens at {path}"
        raise ServiceError(msg, _HINT) from None
    except PermissionError:
        sock.close()
        msg = f"not allowed to connect to the attestation service at {path}"
        raise ServiceError(msg, "ask its administrator to let you in (docs/service.md)") from None
    except OSError as e:
        sock.close()
        msg = f"cannot connect to {path}: {e.strerror or e}"
        raise ServiceError(msg, _HINT) from None
    return sock


def call(path: Path, request: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Send one request; relay the events; return the final frame (result or error)."""
    with connect(path) as sock:
        try:
            protocol.send(sock, request)
            while True:
                frame = protocol.recv(sock, protocol.MAX_RESPONSE)
                if frame is None:
                    break
                kind = frame.get("type")
                if kind in ("result", "error"):
                    return frame
                if kind == "info":
                    reporter.info(str(frame.get("message", "")))
                elif kind == "warn":
                    reporter.warn(str(frame.get("message", "")))
                elif kind == "log":
                    reporter.log_line(str(frame.get("check", "")), str(frame.get("line", "")))
        except OSError as e:
            msg = f"the connection to the attestation service broke: {e.strerror or e}"
            raise ServiceError(msg, "see the service's log; nothing was written here") from None
    msg = "the attestation service closed the connection before it answered"
    raise ServiceError(msg, "see the service's log (was it stopped?); nothing was written here")


def _report(raw: Any, commit: str) -> pipeline.BuildReport:
    """The service's `build --json` object as a BuildReport (bundle and note: ours, later)."""
    try:
        if raw["commit"] != commit:
            msg = f"the service answered for commit {raw['commit']!r}, not {commit}"
            raise ServiceError(msg)
        checks = tuple(
            pipeline.CheckResult(
                name=c["name"],
                drv_path=c["drvPath"],
                status=c["status"],
                outputs=c.get("outputs") or {},
                output_check=c.get("outputCheck"),
                log_sha256=c.get("logSha256"),
                error=c.get("error"),
                tests=c.get("tests"),
                via=c.get("reusedFrom"),
            )
            for c in raw["checks"]
        )
        return pipeline.BuildReport(
            commit=commit,
            dirty=False,
            system=str(raw["system"]),
            keyid=str(raw["keyid"]),
            checks=checks,
            bundle_path=None,
            note_attached=False,
        )
    except (KeyError, TypeError) as e:
        msg = f"the service's report is malformed ({type(e).__name__}: {e})"
        raise ServiceError(msg) from None


def _key(frame: dict[str, Any], keyid: str) -> keys.PublicKey:
    pem = frame.get("publicKey")
    try:
        key = keys.public_key_from_pem(str(pem).encode(), "the service's public key")
    except KeyFileError as e:
        msg = f"the service sent no usable public key ({e.message})"
        raise ServiceError(msg) from None
    if key.keyid != keyid:
        msg = f"the service's public key is {key.keyid[:16]}, but its report names {keyid[:16]}"
        raise ServiceError(msg)
    return key


def _lines(frame: dict[str, Any], field: str, key: keys.PublicKey) -> list[str]:
    lines = frame.get(field, [])
    if not isinstance(lines, list) or not all(isinstance(ln, str) for ln in lines):
        msg = f"the service's {field} are not a list of lines"
        raise ServiceError(msg)
    for ln in lines:
        if "\n" in ln or "\r" in ln:
            msg = f"the service's {field} hold a line break inside a line"
            raise ServiceError(msg)
        try:
            dsse.verify(dsse.Envelope.from_json(ln.encode()), [key])
        except (AttestationError, VerificationError) as e:
            msg = f"the service returned a line its key did not sign ({e.message})"
            raise ServiceError(msg) from None
    return lines


def build(req: ServiceBuildRequest, reporter: Reporter | None = None) -> pipeline.BuildReport:
    """Attest HEAD's checks through the service; the same report a local build returns."""
    reporter = reporter or Reporter()
    git, top, commit, subdir, _ = pipeline.working_copy(req.flake_dir, reporter)
    ask = protocol.BuildCall(str(top), commit, subdir, req.checks, req.force, req.verify_deps)
    frame = call(req.socket_path, ask.as_json(), reporter)
    failed = frame.get("type") == "error"
    if failed and "report" not in frame:
        raise RemoteError(
            str(frame.get("message", "the service refused")),
            frame.get("hint") if isinstance(frame.get("hint"), str) else None,
            int(frame["exitCode"]) if isinstance(frame.get("exitCode"), int) else 4,
        )
    report = _report(frame.get("report"), commit)
    key = _key(frame, report.keyid)
    lines = _lines(frame, "lines", key)
    note_lines = _lines(frame, "noteLines", key) if req.attach_note else []
    drop = _lines(frame, "superseded", key)
    bundle_path, noted = pipeline.write_outputs(
        git, req.flake_dir, commit, key, lines, note_lines, drop, output=req.output
    )
    report = replace(report, bundle_path=bundle_path, note_attached=noted)
    if failed:
        hint = frame.get("hint")
        raise pipeline.ChecksFailedError(
            str(frame.get("message")), hint if isinstance(hint, str) else None, report
        )
    return report
