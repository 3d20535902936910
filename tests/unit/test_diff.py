"""diff.compare_trees and the diffoscope hook, on plain temp dirs (no nix needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provenance.verify import diff


def _tree(
    root: Path,
    files: dict[str, str],
    *,
    exe: tuple[str, ...] = (),
    links: dict[str, str] | None = None,
) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if rel in exe:
            p.chmod(0o755)
    for rel, target in (links or {}).items():
        (root / rel).symlink_to(target)
    return root


def test_identical_trees_have_no_differences(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"x.txt": "1\n", "d/y": "2"}, links={"l": "x.txt"})
    b = _tree(tmp_path / "b", {"x.txt": "1\n", "d/y": "2"}, links={"l": "x.txt"})
    assert diff.compare_trees(a, b) == []


def test_every_kind_of_difference_is_listed(tmp_path: Path) -> None:
    a = _tree(
        tmp_path / "a",
        {"same": "s", "text": "one\ntwo\n", "gone": "g", "run.sh": "x", "t/f": "file"},
        links={"link": "same"},
    )
    b = _tree(
        tmp_path / "b",
        {"same": "s", "text": "one\nTWO\n", "new": "n", "run.sh": "x", "t": "now a file"},
        exe=("run.sh",),
        links={"link": "new"},
    )
    got = {(d.path, d.change): d.detail for d in diff.compare_trees(a, b)}
    assert got[("text", "content")] == "8 -> 8 bytes; line 2: -'two' +'TWO'"
    assert ("gone", "removed") in got
    assert ("new", "added") in got
    assert got[("run.sh", "mode")] == "executable False -> True"
    assert got[("link", "target")] == "same -> new"
    assert got[("t", "type")] == "directory -> file"
    assert ("t/f", "removed") in got
    assert not any(path == "same" for path, _ in got)


def test_binary_files_report_sizes_only(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"\xff\x00" * 10)
    (tmp_path / "b").write_bytes(b"\xff\x01" * 11)
    (d,) = diff.compare_trees(tmp_path / "a", tmp_path / "b")
    assert (d.path, d.change, d.detail) == ("", "content", "20 -> 22 bytes")


def test_long_reports_are_truncated(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {f"f{i}": "a" for i in range(diff.MAX_FILES + 5)})
    b = _tree(tmp_path / "b", {f"f{i}": "b" for i in range(diff.MAX_FILES + 5)})
    got = diff.compare_trees(a, b)
    assert len(got) == diff.MAX_FILES + 1
    assert got[-1].detail == "5 more entries not shown"


def test_diffoscope_is_used_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "diffoscope"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "--- $4"\necho "+++ $5"\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert diff.diffoscope(Path("/x/a"), Path("/x/b")) == "--- /x/a\n+++ /x/b\n"
    fake.write_text("#!/bin/sh\nexit 2\n")  # diffoscope's own failure: no report, no crash
    assert diff.diffoscope(Path("/x/a"), Path("/x/b")) is None
