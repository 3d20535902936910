"""Run the in-sandbox normaliser (nix/check-builder.sh + nix/normalise-results.awk) on
the host with the static busybox, exactly as the Nix sandbox runs them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from provenance.example import find_static_busybox

NIX_DIR = Path(__file__).parent.parent.parent / "nix"


@dataclass(frozen=True)
class Built:
    rc: int
    written: bytes  # $out/results.json, b"" when the builder wrote none
    log: str  # what the build log would hold (the builder's stdout and stderr)


def run_builder(tmp_path: Path, report: Path, fmt: str) -> Built:
    """mkTestCheck's builder on `report`; for "summary" the command prints it."""
    src = tmp_path / "src"
    src.mkdir()
    name = "report" + report.suffix
    shutil.copy(report, src / name)
    out = tmp_path / "out"
    (tmp_path / "build").mkdir()
    busybox = str(find_static_busybox())
    env = {
        "busybox": busybox,
        "src": str(src),
        "testCommand": f"cat {name}" if fmt == "summary" else "true",
        "format": fmt,
        "report": name,
        "normaliser": str(NIX_DIR / "normalise-results.awk"),
        "out": str(out),
        "TMPDIR": str(tmp_path / "build"),
        "PATH": str(Path(busybox).parent),
    }
    cmd = [busybox, "sh", str(NIX_DIR / "check-builder.sh")]
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    results = out / "results.json"
    written = results.read_bytes() if results.exists() else b""
    return Built(done.returncode, written, done.stdout.decode() + done.stderr.decode())


def normalise_text(tmp_path: Path, text: str, fmt: str = "summary") -> Built:
    suffix = {"summary": ".txt", "tap": ".tap", "junit": ".xml"}[fmt]
    report = tmp_path / f"input{suffix}"
    report.write_text(text)
    work = tmp_path / "run"
    work.mkdir()
    return run_builder(work, report, fmt)
