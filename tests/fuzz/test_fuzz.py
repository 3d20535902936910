"""Property: every parser of outside input returns a result or raises a ProvenanceError.

Hypothesis tests per kind of input (targets.py names the parsers), each drawing
structured-but-hostile inputs from committed seeds (seeds/, tests/fixtures/): byte edits
with hostile tokens (deep nesting, huge numbers, invalid UTF-8, NULs, control characters),
and for JSON, values swapped for the wrong types. test_sweep swaps every field of every
seed document for each wrong type in turn (random edits rarely reach one field of 150).
Then every seed as it is and every committed crash replay (test_seeds, test_crashes).
Budget and determinism: harness.py; the count: conftest.py.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import harness, targets
from tests.fuzz.harness import FUZZ, bounded, files, json_texts, mutants

STATEMENTS = harness.statements()
BUNDLE = harness.bundle_lines()
NOTES = files("fuzz/seeds/notes/*")
POLICIES = files("fuzz/seeds/policy/*")
PUBLIC_KEYS = files("fuzz/seeds/keys/*.pub")
JUNIT = files("fixtures/reports/*.xml", "fixtures/reports/bad/*.xml")
TAP = files("fixtures/reports/*.tap", "fixtures/reports/bad/*.tap")
LOGS = files("fixtures/reports/*.txt", "fixtures/reports/bad/*.txt")
DRVS = files("fuzz/seeds/drv/*.drv")
LEDGERS = files("fuzz/seeds/ledger/*")


def _json(*globs: str) -> list[Any]:
    return [json.loads(b) for b in files(*globs)]


NIX = {
    "nix.config": _json("fixtures/nix/*config*.json"),
    "nix.environment": _json("fixtures/nix/*config*.json"),
    "nix.store_info": _json("fixtures/nix/store-info-*.json"),
    "nix.path_info": _json("fixtures/nix/path-info-*.json"),
    "nix.closure": _json("fixtures/nix/path-info-*.json"),
    "nix.build": _json("fixtures/nix/build-json-*.json"),
    "nix.flake_metadata": _json("fixtures/nix/flake-metadata-*.json"),
    "nix.derivations": _json("fixtures/nix/*derivation*.json"),
    "nix.checks": _json("fuzz/seeds/nix/select-checks-*.json"),
    "nix.checks_named": _json("fuzz/seeds/nix/select-checks-*.json"),
    "nix.objects": _json("fixtures/nix/*.json", "fuzz/seeds/nix/*.json"),
    # a config that names a chroot store (the fixtures' configs keep no `store`)
    "nix.store_root": [
        {**doc, "store": {"value": setting}}
        for doc in _json("fixtures/nix/show-config-2.8.json")
        for setting in files("fuzz/seeds/nix/store-settings.txt")[0].decode().split()
    ],
}
STORE_SETTINGS = files("fuzz/seeds/nix/store-settings.txt")[0].split(b"\n")


@st.composite
def note_bodies(draw: st.DrawFn) -> bytes:
    """A note as many signers leave it: real lines, edited lines, and freshly signed
    statements with hostile values inside (they pass the signature check)."""
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(draw(st.sampled_from(BUNDLE)))
        elif kind == 1:
            lines.append(draw(mutants(BUNDLE, harness.JSON_TOKENS)))
        else:
            lines.append(harness.sign_line(draw(json_texts(STATEMENTS))))
    body = b"\n".join(lines)
    return draw(mutants([body])) if draw(st.integers(0, 4)) == 0 else body


def _run(target: str, data: bytes) -> None:
    bounded(target, targets.TARGETS[target], data)


# -- formats ------------------------------------------------------------------------------


@FUZZ
@given(mutants(BUNDLE, harness.JSON_TOKENS) | json_texts([json.loads(b) for b in BUNDLE]))
def test_dsse_envelope(data: bytes) -> None:
    _run("dsse.envelope", data)


@FUZZ
@given(mutants([b"\n".join(BUNDLE), *files("fuzz/seeds/bundle/*")], harness.JSON_TOKENS))
def test_bundle_lines(data: bytes) -> None:
    _run("bundle.lines", data)
    _run("bundle.file", data)


@FUZZ
@given(json_texts(STATEMENTS))
def test_signed_statement(data: bytes) -> None:
    _run("claims.statement", data)


@FUZZ
@given(mutants(PUBLIC_KEYS, harness.PEM_TOKENS))
def test_public_key(data: bytes) -> None:
    _run("keys.public_pem", data)
    _run("keys.public_file", data)


@FUZZ
@given(mutants(harness.private_keys() + PUBLIC_KEYS, harness.PEM_TOKENS))
def test_signing_key(data: bytes) -> None:
    _run("keys.signing_key", data)


# -- note blobs ---------------------------------------------------------------------------


@FUZZ
@given(note_bodies() | mutants(NOTES, harness.JSON_TOKENS))
def test_note_readers(data: bytes) -> None:
    for target in (
        "notes.union",
        "notes.gate",
        "notes.build",
        "notes.verify",
        "notes.bundle_merge",
    ):
        _run(target, data)


# -- policy -------------------------------------------------------------------------------


@FUZZ
@given(mutants(POLICIES, harness.TOML_TOKENS))
def test_policy(data: bytes) -> None:
    for target in ("policy.file", "policy.search", "policy.ref", "policy.definition"):
        _run(target, data)


# -- reports ------------------------------------------------------------------------------


@FUZZ
@given(mutants(JUNIT, harness.XML_TOKENS))
def test_junit(data: bytes) -> None:
    _run("reports.junit", data)


@FUZZ
@given(mutants(TAP, harness.TAP_TOKENS))
def test_tap(data: bytes) -> None:
    _run("reports.tap", data)


@FUZZ
@given(mutants(LOGS + TAP, harness.SUMMARY_TOKENS + harness.TAP_TOKENS))
def test_runner_logs(data: bytes) -> None:
    _run("reports.summary", data)
    _run("reports.runner_log", data)


@FUZZ
@given(json_texts(harness.results_documents()))
def test_results_json(data: bytes) -> None:
    _run("reports.results_json", data)


@FUZZ
@given(
    mutants(JUNIT + TAP, harness.XML_TOKENS + harness.TAP_TOKENS)
    | json_texts(harness.results_documents())
)
def test_found_reports(data: bytes) -> None:
    _run("reports.found", data)


# -- nix ----------------------------------------------------------------------------------


@FUZZ
@given(mutants(DRVS, harness.ATERM_TOKENS))
def test_drv_files(data: bytes) -> None:
    _run("nix.drvfile", data)
    _run("reports.declared", data)


@pytest.mark.parametrize("target", sorted(NIX))
def test_nix_json(target: str) -> None:
    @FUZZ
    @given(json_texts(NIX[target]))
    def fuzz(data: bytes) -> None:
        _run(target, data)

    fuzz()


@FUZZ
@given(
    mutants(
        LOGS + files("fixtures/nix/*.json"),
        (
            b"error: ",
            b"may not be deterministic: output '",
            b"' differs",
            b"keeping build directory '",
            b"path '/nix/store/x' was modified",
            b"building '/nix/store/x.drv'...",
            b"nix (Nix) 2.",
            b") ",
        ),
    )
)
def test_nix_text(data: bytes) -> None:
    _run("nix.stderr", data)
    _run("nix.version", data)


@FUZZ
@given(
    mutants(
        [s for s in STORE_SETTINGS if s],
        (b"local?", b"local://", b"[", b"root=", b"real=", b"store=", b"&", b"%"),
    )
)
def test_store_settings(data: bytes) -> None:
    _run("nix.store_root", data)


# -- the ledger ---------------------------------------------------------------------------


@FUZZ
@given(mutants(LEDGERS, harness.LEDGER_TOKENS) | harness.ledger_texts(LEDGERS))
def test_ledger(data: bytes) -> None:
    _run("ledger.read", data)
    _run("ledger.append", data)


# -- every field of the seed documents, wrong in turn ---------------------------------------


def _chained(entries: list[Any]) -> bytes:
    from provenance.audit import ledger  # noqa: PLC0415

    lines, prev = [], ledger.GENESIS
    for entry in entries:
        # Chained again, unless the sweep broke prev itself: edits must reach the schema.
        ok = isinstance(entry, dict) and isinstance(entry.get("prev"), str)
        doc = {**entry, "prev": prev} if ok else entry
        try:
            lines.append(ledger.canonical(doc))  # the form the reader insists on
        except ValueError:  # NaN or infinity: not canonical JSON at all
            lines.append(harness.dump(doc))
        prev = ledger.entry_hash(lines[-1])
    return b"\n".join(lines) + b"\n"


@functools.cache
def _sweeps() -> dict[str, list[bytes]]:
    statements = [t for s in STATEMENTS for t in harness.sweep_texts(s)]
    signed = [harness.sign_line(payload) for payload in statements]
    ledger = [json.loads(ln) for ln in LEDGERS[0].splitlines()]
    small_results = [d for d in harness.results_documents() if len(harness._slots(d)) < 60]
    envelope = json.loads(BUNDLE[0])
    found: dict[str, list[bytes]] = {
        "claims.statement": statements,
        "dsse.envelope": harness.sweep_texts(envelope),
        "notes.gate": signed,
        "notes.build": signed,
        "notes.verify": signed,
        "notes.bundle_merge": signed,
        "reports.results_json": [t for d in small_results for t in harness.sweep_texts(d)],
        "ledger.read": [_chained([v, ledger[1]]) for v in harness.sweep(ledger[0])],
    }
    by_seed: dict[bytes, list[bytes]] = {}  # one sweep per document, however many read it
    for target, docs in NIX.items():
        found[target] = []
        for d in docs:
            key = harness.dump(d)
            if key not in by_seed:
                by_seed[key] = harness.sweep_texts(d)
            found[target] += by_seed[key]
    return found


SWEPT = sorted(["claims.statement", "dsse.envelope", "ledger.read", "reports.results_json", *NIX])
SWEPT += ["notes.build", "notes.bundle_merge", "notes.gate", "notes.verify"]


@pytest.mark.parametrize("target", SWEPT)
def test_sweep(target: str) -> None:
    """Each field of each seed document swapped for a value of the wrong type, or removed."""
    for data in _sweeps()[target]:
        _run(target, data)


# -- seeds and crashes, as they are -------------------------------------------------------


def _every_seed() -> list[tuple[str, bytes]]:
    pairs = [("dsse.envelope", ln) for ln in BUNDLE] + [
        ("bundle.file", b) for b in files("fuzz/seeds/bundle/*")
    ]
    pairs += [("claims.statement", harness.dump(s)) for s in STATEMENTS]
    pairs += [("keys.public_file", k) for k in PUBLIC_KEYS]
    pairs += [("keys.signing_key", k) for k in harness.private_keys()]
    pairs += [(t, n) for n in NOTES for t in ("notes.gate", "notes.build", "notes.verify")]
    pairs += [(t, p) for p in POLICIES for t in ("policy.file", "policy.ref", "policy.definition")]
    pairs += [("reports.junit", r) for r in JUNIT] + [("reports.tap", r) for r in TAP]
    pairs += [("reports.summary", r) for r in LOGS]
    pairs += [("nix.drvfile", d) for d in DRVS] + [("reports.declared", d) for d in DRVS]
    pairs += [(t, harness.dump(doc)) for t, docs in NIX.items() for doc in docs]
    pairs += [("ledger.read", b) for b in LEDGERS] + [("ledger.append", b) for b in LEDGERS]
    return pairs


def test_seeds() -> None:
    """Every seed, unmutated, through its target: the real inputs must read cleanly."""
    for target, data in _every_seed():
        _run(target, data)


@pytest.mark.parametrize(
    ("target", "name"),
    [(t, n) for t in sorted(targets.TARGETS) for n, _ in harness.crash_seeds(t)],
)
def test_crashes(target: str, name: str) -> None:
    """Each input that once crashed a target (seeds/crashes/TARGET/NAME) now reads cleanly."""
    data = dict(harness.crash_seeds(target))[name]
    _run(target, data)
