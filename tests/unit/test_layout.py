"""Architecture rules that keep the code honest: one door per external tool."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).parent.parent.parent / "provenance"


def test_only_proc_imports_subprocess() -> None:
    offenders = [
        p.name
        for p in PKG.rglob("*.py")
        if p.name != "proc.py"
        and re.search(r"^\s*(import subprocess|from subprocess)", p.read_text(), re.M)
    ]
    assert offenders == []


def test_only_cli_exits() -> None:
    offenders = [
        p.name
        for p in PKG.rglob("*.py")
        if p.name not in ("cli.py", "__main__.py")
        and re.search(r"sys\.exit\(|typer\.Exit\(", p.read_text())
    ]
    assert offenders == []
