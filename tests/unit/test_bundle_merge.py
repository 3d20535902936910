"""bundles.py: the merge rule, and the lock that keeps concurrent writers' lines."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from provenance.attest import bundles
from provenance.formats import dsse, keys

SLSA = "https://slsa.dev/provenance/v1"


def _line(signer: keys.Signer, attribute: str, *, dirty: bool = False, n: int = 0) -> str:
    stmt = {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": SLSA,
        "subject": [],
        "predicate": {
            "buildDefinition": {
                "externalParameters": {"attribute": attribute, "source": {"dirty": dirty}, "n": n}
            }
        },
    }
    return dsse.sign(json.dumps(stmt, sort_keys=True).encode(), [signer]).to_json()


def test_merge_replaces_only_this_keys_same_check_same_dirtiness(tmp_path: Path) -> None:
    me = keys.load_signer(keys.generate(tmp_path / "me")[0])
    other = keys.load_signer(keys.generate(tmp_path / "other")[0])
    old_a, old_b = _line(me, "checks.x.a"), _line(me, "checks.x.b")
    theirs_a, dirty_a = _line(other, "checks.x.a"), _line(me, "checks.x.a", dirty=True)
    new_a = _line(me, "checks.x.a", n=1)
    existing = [x.encode() for x in (old_a, old_b, theirs_a, dirty_a)]
    out = bundles.merged(existing, [new_a.encode()], me.public)
    assert out == [x.encode() for x in (old_b, theirs_a, dirty_a, new_a)]
    assert bundles.merged(out, [new_a.encode()], me.public) == out  # idempotent


def _writer(args: tuple[str, str, int]) -> None:
    key, target, w = args
    signer = keys.load_signer(key)
    for i in range(12):
        bundles.write(Path(target), [_line(signer, f"checks.x.w{w}c{i}")], signer.public)


def test_concurrent_writers_lose_no_lines(tmp_path: Path) -> None:
    key, _, _ = keys.generate(tmp_path / "k")
    target = tmp_path / "out" / "b.intoto.jsonl"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        pool.map(_writer, [(str(key), str(target), w) for w in range(6)])
    lines = [ln for ln in target.read_bytes().split(b"\n") if ln]
    assert len(lines) == 72 and len(set(lines)) == 72
