"""The ledger file: canonical lines, the hash chain, tamper detection, locking, crash repair."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provenance.audit import ledger as L
from tests.conftest import git, run

FORK = multiprocessing.get_context("fork")


def draft(**kw: Any) -> L.Draft:
    base: dict[str, Any] = {
        "time": "2025-03-01T10:00:00.000Z",
        "command": "build",
        "ok": True,
        "actor": L.Actor(keyid="ab" * 32, user="alice", host="box"),
        "repo": "/src/repo",
        "commit": "c" * 40,
        "checks": (
            L.CheckRecord(
                name="det", drv_path="/nix/store/aaa-det.drv", result="passed", tier="local"
            ),
            L.CheckRecord(
                name="chain",
                drv_path="/nix/store/bbb-chain.drv",
                result="failed",
                tier="local",
                duration_ms=12,
            ),
        ),
        "bundles": (
            L.BundleRecord(
                path="/src/repo/.provenance/c.intoto.jsonl", sha256="0" * 64, role="written"
            ),
        ),
        "tier": "local",
        "duration_ms": 1500,
    }
    base.update(kw)
    return L.Draft(**base)


def fill(path: Path, n: int) -> list[bytes]:
    for i in range(n):
        L.append(path, draft(commit=f"{i:040x}"))
    return path.read_bytes().splitlines()


def test_lines_are_canonical_and_chained(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    first = L.append(p, draft(repo='/src/ré\u2028po "q"\\\x01'))
    second = L.append(p, draft())
    lines = p.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert (first.line, second.line) == (1, 2)
    obj = json.loads(lines[0])
    assert obj["prev"] == L.GENESIS and obj["seq"] == 0 and obj["v"] == 1
    # canonical: sorted keys, no spaces, raw UTF-8, control characters escaped
    assert (
        lines[0]
        == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert "ré".encode() in lines[0] and b"\\u0001" in lines[0]
    assert json.loads(lines[1])["prev"] == hashlib.sha256(lines[0]).hexdigest()
    report = L.verify_chain(p)
    assert report.ok and report.entries == 2
    assert report.head == hashlib.sha256(lines[1]).hexdigest()
    # optional fields left out, not null
    assert "durationMs" not in obj["checks"][0] and obj["checks"][1]["durationMs"] == 12


def test_pydantic_dump_matches_canonical(tmp_path: Path) -> None:
    # verify_chain's fast path relies on this equality; if it ever broke, the slow path
    # would still decide correctly, but verification would get slower.
    p = tmp_path / "l.jsonl"
    L.append(p, draft(repo='x\x7f\u00e9\U0001f600\t"</script>', actor=L.Actor(user="u", host="h")))
    raw = p.read_bytes().rstrip(b"\n")
    entry = L.Entry.model_validate_json(raw)
    assert entry.model_dump_json(by_alias=True, exclude_none=True).encode() == raw


def test_empty_and_missing_ledger(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    p.touch()
    assert L.verify_chain(p).ok and L.verify_chain(p).head == L.GENESIS
    with pytest.raises(L.UsageError, match="no ledger"):
        L.verify_chain(tmp_path / "absent.jsonl")


def _rewrite(p: Path, lines: list[bytes]) -> None:
    p.write_bytes(b"".join(ln + b"\n" for ln in lines))


def test_edited_middle_entry_is_named(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    lines = fill(p, 10)
    # A careful forger keeps the line valid and canonical: "failed" becomes "passed".
    assert b'"result":"failed"' in lines[4]
    lines[4] = lines[4].replace(b'"result":"failed"', b'"result":"passed"')
    _rewrite(p, lines)
    r = L.verify_chain(p)
    assert not r.ok and r.broken is not None
    assert r.broken.line == 5 and "line 5 was changed" in r.broken.reason
    assert r.entries == 4 and r.unverified == 5
    assert r.head == hashlib.sha256(lines[3]).hexdigest()


@pytest.mark.parametrize(
    ("mutate", "line", "reason"),
    [
        (lambda ls: ls.pop(6), 7, "seq is 7, expected 6"),  # removed
        (lambda ls: ls.insert(3, ls[3]), 5, "seq is 3, expected 4"),  # duplicated
        (lambda ls: ls.__setitem__(2, b"{not json"), 3, "not valid JSON"),
        (lambda ls: ls.__setitem__(2, b"[" * 100_000), 3, "nests too deeply"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b'{"actor"', b'{ "actor"')), 3, "canonical"),
        (lambda ls: ls.__setitem__(0, ls[0].replace(b'"v":1', b'"v":2')), 1, "v"),
        (
            lambda ls: ls.__setitem__(
                2, ls[2].replace(b'"tier":"local"}', b'"tier":"local","x":1}')
            ),
            3,
            "x",
        ),
    ],
)
def test_tampering_is_found(tmp_path: Path, mutate: Any, line: int, reason: str) -> None:
    p = tmp_path / "l.jsonl"
    lines = fill(p, 10)
    mutate(lines)
    _rewrite(p, lines)
    r = L.verify_chain(p)
    assert r.broken is not None, r
    assert r.broken.line == line and reason in r.broken.reason
    assert r.entries == r.broken.line - 1


def test_swapped_lines_name_the_first_moved_one(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    lines = fill(p, 6)
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(p, lines)
    r = L.verify_chain(p)
    assert r.broken is not None and r.broken.line == 3 and "moved" in r.broken.reason


def test_truncated_tail_is_repaired_and_reported(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    lines = fill(p, 5)
    whole = p.read_bytes()
    p.write_bytes(whole + lines[1][:37])  # a crash mid-append: no newline
    r = L.verify_chain(p)
    assert r.ok and r.entries == 5 and r.partial_tail == 37
    done = L.append(p, draft())
    assert done.repaired_bytes == 37 and done.line == 6
    after = p.read_bytes()
    assert after.startswith(whole)  # complete entries untouched
    r = L.verify_chain(p)
    assert r.ok and r.entries == 6 and r.partial_tail == 0


def test_partial_only_line_is_dropped(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    p.write_bytes(b'{"act')
    done = L.append(p, draft())
    assert done.repaired_bytes == 5 and done.entry["seq"] == 0 and done.entry["prev"] == L.GENESIS


@pytest.mark.parametrize("junk", [b"garbage", b'{"seq":' + b"[" * 100_000])
def test_refuses_to_chain_onto_junk(tmp_path: Path, junk: bytes) -> None:
    p = tmp_path / "l.jsonl"
    fill(p, 2)
    with p.open("ab") as f:
        f.write(junk + b"\n")
    before = p.read_bytes()
    with pytest.raises(L.LedgerError, match="last entry is not a ledger entry"):
        L.append(p, draft())
    assert p.read_bytes() == before


def _worker(path: str, wid: int, n: int) -> None:
    for i in range(n):
        L.append(Path(path), draft(actor=L.Actor(user=f"w{wid}", host="h"), commit=f"{i:040x}"))


def test_concurrent_appenders_lose_nothing(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    procs = [FORK.Process(target=_worker, args=(str(p), w, 200)) for w in range(8)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(120)
        assert pr.exitcode == 0
    r = L.verify_chain(p, keep=True)
    assert r.ok and r.entries == 1600 and r.partial_tail == 0
    per: dict[str, list[int]] = {}
    for e in r.items:
        per.setdefault(e.actor.user, []).append(int(e.commit or "", 16))
    assert sorted(per) == [f"w{w}" for w in range(8)]
    assert all(v == list(range(200)) for v in per.values())  # each worker's order kept


def _appender(path: str, torn: bool) -> None:
    if torn:
        # Simulate a write the kernel does not finish in one go (full disk, NFS, power
        # loss): the same append code, its single os.write split in two with a gap.
        real = os.write

        def torn_write(fd: int, data: bytes) -> int:
            half = len(data) // 2
            n = real(fd, data[:half])
            time.sleep(0.002)
            return n + real(fd, data[half:])

        L.os.write = torn_write  # type: ignore[attr-defined]
    while True:
        L.append(Path(path), draft())


def test_sigkill_mid_append_50_trials(tmp_path: Path) -> None:
    rng = random.Random(20250301)  # noqa: S311 - seeded on purpose: reproducible kill times
    torn_tails = 0
    for trial in range(50):
        p = tmp_path / f"l{trial}.jsonl"
        fill(p, 3)
        child = FORK.Process(target=_appender, args=(str(p), trial % 2 == 1))
        child.start()
        time.sleep(rng.uniform(0.005, 0.06))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        data = p.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        r = L.verify_chain(p)
        assert r.ok, r.describe()
        assert r.entries == complete.count(b"\n") >= 3
        assert r.partial_tail == len(data) - len(complete)
        torn_tails += r.partial_tail > 0
        done = L.append(p, draft())  # must not deadlock on the dead child's lock
        assert done.repaired_bytes == r.partial_tail
        assert p.read_bytes().startswith(complete)
        r2 = L.verify_chain(p)
        assert r2.ok and r2.entries == r.entries + 1 and r2.partial_tail == 0
    assert torn_tails >= 5  # the torn-write trials really left partial lines to repair


def test_env_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    assert L.env_tier({}) == "local"
    assert L.env_tier({"CI": "true"}) == "ci"
    assert L.env_tier({"GITHUB_ACTIONS": "true"}) == "ci"
    assert L.env_tier({"CI": "false"}) == "local"
    checks = [
        L.CheckRecord(name="a", result="passed", tier="reproduced"),
        L.CheckRecord(name="b", result="failed", tier="ci"),
    ]
    assert L.highest_tier(checks, "local") == "reproduced"
    assert L.highest_tier(checks[1:], "local") == "local"  # failures prove nothing


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "f").write_text("x")
    run(["git", "init", "-q"], cwd=repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    return repo


def test_record_goes_to_toplevel_and_keeps_tree_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv(L.LEDGER_ENV, raising=False)
    repo = _repo(tmp_path)
    bundle = tmp_path / "b.intoto.jsonl"
    bundle.write_bytes(b"{}\n")
    done = L.record(
        repo / "sub",
        command="build",
        ok=True,
        commit="c" * 40,
        checks=[L.CheckRecord(name="det", result="passed", tier="local")],
        bundles=[(bundle, "written")],
        keyid="k",
    )
    assert done is not None
    ledger = repo / ".provenance" / "ledger.jsonl"
    e = L.verify_chain(ledger, keep=True).items[0]
    assert e.repo == str(repo) and e.actor.keyid == "k" and e.tier == "local"
    assert e.bundles[0].sha256 == hashlib.sha256(b"{}\n").hexdigest()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    git(repo, "remote", "add", "origin", "https://example.invalid/r.git")
    L.record(repo, command="verify", ok=True, commit=None, checks=[])
    assert L.verify_chain(ledger, keep=True).items[1].repo == "https://example.invalid/r.git"


def test_record_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    warnings: list[str] = []
    (tmp_path / "dir.jsonl").mkdir()
    monkeypatch.setenv(L.LEDGER_ENV, str(tmp_path / "dir.jsonl"))
    assert (
        L.record(repo, command="gate", ok=False, commit=None, checks=[], warn=warnings.append)
        is None
    )
    assert len(warnings) == 1 and warnings[0].startswith("ledger not updated: cannot open")
    # outside a repository: a warning too
    monkeypatch.delenv(L.LEDGER_ENV)
    assert (
        L.record(tmp_path, command="gate", ok=False, commit=None, checks=[], warn=warnings.append)
        is None
    )
    assert "not inside a git repository" in warnings[1]
    # outside a repository with an explicit ledger: recorded, repo = the directory
    monkeypatch.setenv(L.LEDGER_ENV, str(tmp_path / "x.jsonl"))
    assert L.record(tmp_path, command="verify", ok=True, commit=None, checks=[]) is not None
    assert L.verify_chain(tmp_path / "x.jsonl", keep=True).items[0].repo == str(tmp_path)
    monkeypatch.setenv(L.LEDGER_ENV, "off")
    assert L.record(repo, command="gate", ok=True, commit=None, checks=[]) is None
    assert not (repo / ".provenance").exists()


def test_record_writes_without_pydantic_and_readers_accept_it(tmp_path: Path) -> None:
    """The append path (every build, cache hits included) must not import pydantic, and
    what it writes must be exactly what the strict schema reads back."""
    ledger = tmp_path / "l.jsonl"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from provenance.audit import ledger as L\n"
        f"p = Path({str(ledger)!r})\n"
        "checks = [L.check_record('det', 'passed', 'local', '/nix/store/" + "a" * 32 + "-x.drv'),\n"
        "          L.check_record('lint', 'failed', 'ci')]\n"
        "for i in range(3):\n"
        "    assert L.record(p.parent, command='build', ok=i != 1, commit='c' * 40,\n"
        "                    checks=checks, keyid='k' * 64, duration_ms=i, ledger_path=p)\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    chain = L.verify_chain(ledger, keep=True)
    assert chain.ok and chain.entries == 3
    first = chain.items[0]
    assert first.actor.keyid == "k" * 64 and first.tier == "local" and first.duration_ms == 0
    assert [c.name for c in first.checks] == ["det", "lint"]
