"""The fuzz harness's machinery: seeds, hostile mutations of them, a bounded call, a count.

Every target is a function of bytes (what arrives from outside: a note line, a policy
file, nix's stdout, a report). `bounded` calls it and accepts exactly two outcomes: a
result, or a `ProvenanceError` with a message. Anything else (a traceback, a call that
runs over its time) fails the test, and hypothesis shrinks the input that did it.

Deterministic: `derandomize` derives the examples from each test's name, the database is
off, and `PROVENANCE_FUZZ_EXAMPLES` (default below) sets the number of examples per
target, so CI runs the same inputs every time; raise it for a longer local run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from provenance.errors import ProvenanceError
from provenance.formats import dsse
from provenance.formats.keys import Signer, _keyid

HERE = Path(__file__).parent
SEEDS = HERE / "seeds"
CRASHES = SEEDS / "crashes"  # one directory per target: inputs that crashed it once
FIXTURES = HERE.parent / "fixtures"

EXAMPLES = int(os.environ.get("PROVENANCE_FUZZ_EXAMPLES", "150"))
# One parse of one input; seconds. Generous: CI machines are slow and shared, and the point
# is catching a hang or a blow-up (a regex gone quadratic), not timing the parsers.
CALL_SECONDS = float(os.environ.get("PROVENANCE_FUZZ_CALL_SECONDS", "3"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # timing is `bounded`'s job, with an alarm that also stops a hang
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

# How many inputs each target ran (the session summary prints them; conftest.py).
RUNS: Counter[str] = Counter()
SECONDS: Counter[str] = Counter()
# PROVENANCE_FUZZ_KEEP_GOING=1 (with PROVENANCE_FUZZ_SAVE): a crash is saved and counted, and
# the run goes on to find the next one instead of stopping to shrink this one; the session
# still fails at its end (conftest.py). For hunting crashes before fixing them.
KEEP_GOING = os.environ.get("PROVENANCE_FUZZ_KEEP_GOING") == "1"
FAILURES: Counter[str] = Counter()

T = TypeVar("T")


class Hang(BaseException):
    """A call ran over CALL_SECONDS. BaseException: the code under test must not catch it."""


def bounded(target: str, fn: Callable[..., T], *args: Any) -> T | ProvenanceError | None:
    """fn(*args): its result or the ProvenanceError it raised; anything else propagates
    (or, with KEEP_GOING, is saved and counted, and None returned)."""
    RUNS[target] += 1

    def alarm(_signum: int, _frame: object) -> None:
        raise Hang(f"{target}: one call ran over {CALL_SECONDS} s (a hang?)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
    start = time.perf_counter()
    try:
        return fn(*args)
    except ProvenanceError as e:
        assert isinstance(e.message, str) and e.message, f"{target}: an error without a message"
        assert isinstance(e.diagnostics(), str)
        return e
    except Exception as e:
        _save(target, args, e)
        if not KEEP_GOING:
            raise
        FAILURES[target] += 1
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        elapsed = time.perf_counter() - start
        SECONDS[target] += elapsed


def _save(target: str, args: tuple[Any, ...], error: BaseException) -> None:
    """With PROVENANCE_FUZZ_SAVE=DIR, keep the smallest input per target and failure site
    (DIR/TARGET/SITE), ready to be committed under seeds/crashes/ with its fix."""
    where = os.environ.get("PROVENANCE_FUZZ_SAVE")
    if not where or not args or not isinstance(args[0], bytes):
        return
    tb = error.__traceback__
    site = "unknown"
    while tb is not None:
        code = tb.tb_frame.f_code
        if "/provenance/" in code.co_filename and "/tests/" not in code.co_filename:
            site = f"{Path(code.co_filename).stem}.{code.co_name}.{tb.tb_lineno}"
        tb = tb.tb_next
    path = Path(where) / target / f"{type(error).__name__}-{site}"
    if not path.exists() or len(path.read_bytes()) > len(args[0]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(args[0])


# -- seeds ---------------------------------------------------------------------------------


def files(*globs: str) -> list[bytes]:
    """The bytes of every file matching the globs (relative to tests/), sorted by path."""
    root = HERE.parent
    paths = sorted({p for g in globs for p in root.glob(g) if p.is_file()})
    assert paths, f"no seed files match {globs}"
    return [p.read_bytes() for p in paths]


def crash_seeds(target: str) -> list[tuple[str, bytes]]:
    d = CRASHES / target
    if not d.is_dir():
        return []
    return [(p.name, p.read_bytes()) for p in sorted(d.iterdir()) if p.is_file()]


def bundle_lines() -> list[bytes]:
    return [ln for data in files("fuzz/seeds/bundle/*") for ln in data.split(b"\n") if ln.strip()]


def statements() -> list[Any]:
    """The statements inside the real bundle lines (provenance, test-result, VSA)."""
    return [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in bundle_lines()]


# A fixed key for statements the fuzzer signs: its lines pass the signature check, so what
# lies behind it (statement parsing, the recorded environment, binding) is fuzzed too.
_FUZZ_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"provenance fuzz key").digest())
FUZZ_SIGNER = Signer(_FUZZ_KEY, _keyid(_FUZZ_KEY.public_key()))


def sign_line(payload: bytes) -> bytes:
    return dsse.sign(payload, [FUZZ_SIGNER]).to_json().encode()


# -- hostile pieces --------------------------------------------------------------------------

DEEP = 100_000
HOSTILE: list[bytes] = [
    b"\x00",
    b"\xff",
    b"\xc3(",  # invalid UTF-8
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xe2\x80\xa8",  # U+2028: a line break to some readers, not to split(b"\n")
    b"\x1b[2K\r",
    b"\r",
    b"\r\n",
    b"\t",
    b"\x7f\x0b\x0c",
    b"\n",
    b"\n\n",
    b" ",
    b'"',
    b"'",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\x",
    b"[" * DEEP,
    b"{" * DEEP,
    b'{"a":' * (DEEP // 2),
    b"9" * 5000,  # over Python's int-from-text limit
    b"-" + b"9" * 400,
    b"1e999",
    b"-0",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"0x1f",
    b"1_0",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"#",
    b"=",
    b"/nix/store/",
    b"../",
    b"%00",
    b"A" * 70_000,
]

JSON_TOKENS = [b",", b":", b'""', b'"x":', b"[", b"]", b"{", b"}", b'{"":null}']
XML_TOKENS = [
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<!ENTITY",
    b"<testsuite>",
    b"</testsuite>",
    b'<testsuite failures="1">',
    b'<testcase name="t"/>',
    b"<testcase>",
    b"</testcase>",
    b"<failure/>",
    b"<error/>",
    b"<skipped/>",
    b"<a:testcase xmlns:a='u'/>",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&#9999999999;",
    b"<![CDATA[",
    b"]]>",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"<?xml version='1.0' encoding='bogus'?>",
    b'failures="' + b"9" * 5000 + b'"',
    b"<testsuite>" * 5000,
    b"<testcase>" * 3000,
]
TAP_TOKENS = [
    b"TAP version 13\n",
    b"TAP version 14\n",
    b"1..",
    b"1..0\n",
    b"1.." + b"9" * 5000 + b"\n",
    b"ok ",
    b"not ok ",
    b"ok " + b"9" * 5000,
    b"# Subtest: ",
    b"    ",
    b"    " * 2000 + b"ok\n",
    b"# SKIP",
    b"# TODO",
    b"Bail out!",
    b"  ---\n",
    b"  ...\n",
]
SUMMARY_TOKENS = [
    b"=== 1 passed in 0.1s ===\n",
    b"==== " + b"9" * 5000 + b" passed in 1s ====\n",
    b"Ran " + b"9" * 5000 + b" tests in 1s\n",
    b"Ran 3 tests in 0.1s\n\nOK\n",
    b"FAILED (failures=1)\n",
    b"FAILED (failures=" + b"9" * 5000 + b")\n",
    b"test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
    b"test result: FAILED. "
    + b"9" * 5000
    + b" passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
    b"DONE 2 runs, 3 tests, 1 skipped, 1 failure in 0.1s\n",
    b"DONE " + b"9" * 5000 + b" tests\n",
    b"--- FAIL: TestX\n",
    b"FAIL\n",
    b"Tests:       1 failed, 2 passed, 3 total\n",
    b"Tests: " + b"9" * 5000 + b" passed, 1 total\n",
    b"Test Suites: 1 failed, 1 total\n",
    b"# tests 3\n# pass 2\n# fail 1\n",
    b"# tests " + b"9" * 5000 + b"\n",
    b"# pass " + b"9" * 5000 + b"\n",
    b"\xe2\x84\xb9 tests 3\n",
    b"t/a.t (Wstat: 256 (exited 1) Tests: 2 Failed: 1)\n",
    b"t/a.t (Wstat: 256 Tests: 2 Failed: " + b"9" * 5000 + b")\n",
    b"Files=1, Tests=2,  0 wallclock secs\nResult: FAIL\n",
    b"Files=1, Tests=" + b"9" * 5000 + b", 0 secs\n",
    b"Result: PASS\n",
    b"t/basic.t .. \n",
    b"4 tests, 1 failure, 1 skipped\n",
    b"4 tests, " + b"9" * 5000 + b" failures\n",
    b"5 passed, 0 failed\n",
    b"5 passed, " + b"9" * 5000 + b" failed\n",
    b"mkTestCheck: --- raw report ---\n",
    b"mkTestCheck: --- end of raw report ---\n",
    b"mkTestCheck: done\n",
]
TOML_TOKENS = [
    b"\n[trust]\n",
    b"\n[trust.keys.x]\n",
    b"\n[[trust]]\n",
    b"\n[environment]\n",
    b"\n[definition]\n",
    b"\nthreshold = ",
    b"\nthreshold = " + b"9" * 5000 + b"\n",
    b"\nthreshold = 1e999\n",
    b"\nexpires = 1979-05-27T07:32:00Z\n",
    b"\nexpires = 9999-12-31\n",
    b"\nexpires = 07:32:00\n",
    b"\nx = " + b"[" * DEEP + b"\n",
    b"\nx = " + b"{a=" * (DEEP // 3) + b"\n",
    b"\nx = " + b"[" * 900 + b"]" * 900 + b"\n",
    b'"""',
    b"'''",
    b"inf",
    b"nan",
    b"0o7",
    b"\\U0010ffff",
    b"\\U00110000",
    b"\nallowed-sandbox-paths = [[1], {}]\n",
    b"\nsandbox-enforcement = [[1], {a=1}]\n",
    b'\npaths = ["/etc", "..", ""]\n',
    b'\npublic_key = "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA\\n-----END PUBLIC KEY-----\\n"\n',
]
PEM_TOKENS = [
    b"-----BEGIN PUBLIC KEY-----",
    b"-----END PUBLIC KEY-----",
    b"-----BEGIN PRIVATE KEY-----",
    b"-----END PRIVATE KEY-----",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"Proc-Type: 4,ENCRYPTED\n",
    b"MCowBQYDK2VwAyEA",  # the Ed25519 SPKI prefix
    b"MC4CAQAwBQYDK2VwBCIEI",  # the Ed25519 PKCS#8 prefix
    b"MEMwBQYDK2VxAzoA",  # Ed448
    b"MCowBQYDKgMEAyEA",  # an OID nobody knows
    b"=",
    b"==",
    b"\n",
    b"A" * 64 + b"\n",
]
ATERM_TOKENS = [
    b"Derive([(",
    b"DrvWithVersion(",
    b'("out","/nix/store/x","","")',
    b'("out","","sha256","")',
    b'("out","/nix/store/x","sha256","impure")',
    b")],[",
    b"],[",
    b'("/nix/store/x.drv",[',
    b'("__noChroot","1")',
    b'("__impure","1")',
    b'("testReport","',
    b'("__json","',
    b'("testReport","a.xml")',
    b'("__json","{\\"testReport\\":[1]}")',
    b'("__json","' + b"[" * DEEP + b'")',
    b'("__json","[]")',
    b'\\"',
    b"\\",
]
LEDGER_TOKENS = [
    b'"seq":' + b"9" * 5000,
    b'"seq":-1',
    b'"seq":1e2',
    b'"seq":true',
    b'"prev":"' + b"0" * 64 + b'"',
    b'"v":2',
    b'"time":"2026-13-99T99:99:99Z"',
    b'"durationMs":' + b"9" * 400,
    b'"durationMs":-1',
    b'"\\ud800"',
    b'"\\u0000"',
    b"\n",
]


# -- mutations of bytes ---------------------------------------------------------------------


@st.composite
def mutants(draw: st.DrawFn, seeds: list[bytes], tokens: Sequence[bytes] = ()) -> bytes:
    """A seed with a few hostile edits: tokens inserted or swapped in, spans deleted,
    repeated or truncated, bytes flipped, pieces of other seeds spliced in."""
    pool = HOSTILE + list(tokens)
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(_OPS))
        size = len(data)
        pos = draw(st.integers(0, size))
        if draw(st.booleans()):  # snap to a line start: where most formats take a new item
            pos = data.rfind(b"\n", 0, pos) + 1
        span = draw(st.integers(0, min(64, size - pos)))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(pool))
        elif op == "replace":
            data[pos : pos + span] = draw(st.sampled_from(pool))
        elif op == "delete":
            del data[pos : pos + max(span, 1)]
        elif op == "repeat":
            data[pos:pos] = bytes(data[pos : pos + span]) * draw(st.integers(1, 200))
        elif op == "truncate":
            del data[pos:]
        elif op == "byte":
            if pos < size:
                data[pos] = draw(st.integers(0, 255))
        elif op == "random":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            at = draw(st.integers(0, len(other)))
            data[pos:pos] = other[at : at + draw(st.integers(1, 512))]
        elif op == "number":
            # A run of digits becomes an extreme number, kept the right shape for the parser.
            i = next((j for j in range(pos, min(size, pos + 256)) if 48 <= data[j] <= 57), -1)
            if i >= 0:
                j = i
                while j < len(data) and 48 <= data[j] <= 57:
                    j += 1
                data[i:j] = draw(st.sampled_from([b"9" * 5000, b"0", b"9" * 30, b"0" * 400 + b"1"]))
        elif op == "nest":
            opener, closer = draw(st.sampled_from(NESTS))
            depth = draw(st.sampled_from([3000, DEEP]))
            if draw(st.booleans()):  # the whole document (after an XML declaration)
                pos, end = (data.find(b"?>") + 2 if data.startswith(b"<?xml") else 0), len(data)
            else:
                end = draw(st.integers(pos, len(data)))
            data[end:end] = closer * depth
            data[pos:pos] = opener * depth
    return bytes(data)


_OPS = [
    "insert",
    "replace",
    "delete",
    "repeat",
    "truncate",
    "byte",
    "random",
    "splice",
    "number",
    "nest",
]
# Balanced wrappers: a well-formed document nested deeper than any recursive reader goes.
NESTS = [
    (b"[", b"]"),
    (b'{"a":', b"}"),
    (b"<testsuite>", b"</testsuite>"),
    (b"<x>", b"</x>"),
    (b"x = [", b"]"),
]


# -- mutations of JSON documents --------------------------------------------------------------

_DEEP_MARK = "\x00deep\x00"  # stands for a value nested DEEP levels, spliced in as text

# Timestamps of the right shape that are no time, or none Python can hold.
TIMES = [
    "2026-13-99T99:99:99Z",
    "9999-12-31T23:59:59.999999Z",
    "0000-01-01T00:00:00.000Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits: \\d to some regex engines
]
SCALARS: list[Any] = [
    *TIMES,
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**63) - 1,
    10**400,
    1.5,
    -0.0,
    float("inf"),
    float("nan"),
    "",
    " ",
    "\x00",
    "\ud800",
    "a\nb",
    "\u2028",
    "\x1b[2K",
    "null",
    "0",
    "true",
    "/nix/store/",
    "/nix/store/x.drv",
    "/nix/store/../../etc/passwd",
    "..",
    "x" * 5000,
    "9" * 5000,
    "git+file://[",
    "git+file://host:99999999/x",
    "sha256-",
    "sha256:" + "z" * 52,
    "0" * 64,
    [],
    {},
    [None],
    {"": None},
    [[[]]],
    [[1], {"a": 1}],
    _DEEP_MARK,
]

_text = st.text(max_size=12) | st.text(st.characters(categories=["Cs", "Cc"]), max_size=4)
# (copied: a later edit must not change the shared constant, or generation is not repeatable)
_scalars = st.sampled_from(SCALARS).map(copy.deepcopy)
hostile_values: st.SearchStrategy[Any] = st.one_of(
    _scalars,
    _text,
    st.integers(),
    st.floats(),
    st.lists(st.none() | st.integers() | _text | _scalars, max_size=3),
    st.dictionaries(_text, st.none() | st.integers() | _text, max_size=3),
)


def _slots(obj: Any, limit: int = 2000) -> list[tuple[Any, Any]]:
    """(container, key) for every value inside obj, breadth first, plus (None, None): obj."""
    found: list[tuple[Any, Any]] = [(None, None)]
    queue = [obj]
    while queue and len(found) < limit:
        node = queue.pop(0)
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for k, v in items:
            found.append((node, k))
            queue.append(v)
    return found


@st.composite
def json_mutants(draw: st.DrawFn, seeds: list[Any]) -> Any:
    """A JSON document with a few of its values replaced, removed, added, wrapped or moved."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc)
        parent, key = draw(st.sampled_from(slots))
        current = doc if parent is None else parent[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap", "move"]))
        if op == "replace":
            new = draw(hostile_values)
        elif op == "wrap":
            new = draw(st.sampled_from([[current], {"value": current}, [current, current]]))
        elif op == "move":
            other, okey = draw(st.sampled_from(slots))
            new = copy.deepcopy(doc if other is None else other[okey])
        elif op == "add":
            if isinstance(current, dict):
                current[draw(_text | st.sampled_from(_keys(doc)))] = draw(hostile_values)
            elif isinstance(current, list):
                current.insert(draw(st.integers(0, len(current))), draw(hostile_values))
            continue
        else:  # delete
            if parent is not None:
                del parent[key]
            continue
        if parent is None:
            doc = new
        else:
            parent[key] = new
    return doc


def _keys(doc: Any) -> list[str]:
    keys = sorted({str(k) for p, k in _slots(doc) if isinstance(p, dict)})
    return keys or ["x"]


def dump(doc: Any, *, pretty: bool = False, ascii_only: bool = True) -> bytes:
    """JSON text as a writer might send it; a _DEEP_MARK becomes a value DEEP levels deep."""
    text = json.dumps(doc, indent=1 if pretty else None, ensure_ascii=ascii_only, allow_nan=True)
    marker = json.dumps(_DEEP_MARK, ensure_ascii=ascii_only)
    text = text.replace(marker, "[" * DEEP + "]" * DEEP)
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def json_texts(draw: st.DrawFn, docs: list[Any], tokens: Sequence[bytes] = ()) -> bytes:
    """A structurally mutated document, serialised, sometimes with byte edits on top."""
    doc = draw(json_mutants(docs)) if draw(st.integers(0, 9)) else draw(st.sampled_from(docs))
    text = dump(doc, pretty=draw(st.booleans()), ascii_only=draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:
        text = draw(mutants([text], [*JSON_TOKENS, *tokens]))
    return text


# -- seeds derived from the committed ones ------------------------------------------------------


def private_keys() -> list[bytes]:
    """Signing keys of every kind a user might pass as --key, from fixed secrets (so no
    private key is committed): ours as keygen writes it, other algorithms, other encodings."""
    from cryptography.hazmat.primitives import serialization as ser  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, x25519  # noqa: PLC0415

    secret = hashlib.sha256(b"provenance fuzz seed key").digest()
    pkcs8, pem, none = ser.PrivateFormat.PKCS8, ser.Encoding.PEM, ser.NoEncryption()
    ec_key = ec.derive_private_key(int.from_bytes(secret, "big") % (2**255), ec.SECP256R1())
    return [
        _FUZZ_KEY.private_bytes(pem, pkcs8, none),
        Ed25519PrivateKey.from_private_bytes(secret).private_bytes(
            pem, ser.PrivateFormat.OpenSSH, none
        ),
        ed448.Ed448PrivateKey.from_private_bytes(secret + secret[:25]).private_bytes(
            pem, pkcs8, none
        ),
        x25519.X25519PrivateKey.from_private_bytes(secret).private_bytes(pem, pkcs8, none),
        ec_key.private_bytes(pem, ser.PrivateFormat.TraditionalOpenSSL, none),
        ec_key.private_bytes(pem, pkcs8, none),
    ]


def results_documents() -> list[Any]:
    """results.json as mkTestCheck writes it, for each recorded JUnit and TAP report."""
    from provenance.attest import testresults  # noqa: PLC0415

    docs: list[Any] = []
    for data, fmt in [(d, "junit") for d in files("fixtures/reports/*.xml")] + [
        (d, "tap") for d in files("fixtures/reports/*.tap")
    ]:
        docs.append(json.loads(testresults.parse_report(data, fmt).render()))
    docs.append(json.loads(testresults.parse_report(b"3 passed, 1 failed\n", "summary").render()))
    return docs


@st.composite
def ledger_texts(draw: st.DrawFn, ledgers: list[bytes]) -> bytes:
    """A ledger with hostile values in its entries, chained again (seq and prev fixed up),
    so the edits reach the schema, the summaries and the reports behind the chain check."""
    from provenance.audit import ledger  # noqa: PLC0415

    entries = [json.loads(ln) for data in ledgers for ln in data.splitlines() if ln.strip()]
    chosen = draw(st.lists(st.sampled_from(entries), min_size=1, max_size=4))
    lines: list[bytes] = []
    prev = ledger.GENESIS
    for seq, entry in enumerate(chosen):
        doc = draw(json_mutants([entry])) if draw(st.booleans()) else copy.deepcopy(entry)
        if isinstance(doc, dict) and draw(st.integers(0, 4)):
            doc["seq"], doc["prev"] = seq, prev
        try:
            line = ledger.canonical(doc)
        except (ValueError, TypeError):  # NaN, or a value canonical JSON cannot hold
            line = dump(doc)
        line = line.replace(json.dumps(_DEEP_MARK).encode(), b"[" * DEEP + b"]" * DEEP)
        lines.append(line)
        prev = ledger.entry_hash(line)
    return b"\n".join(lines) + (b"\n" if draw(st.integers(0, 5)) else b"")


# -- a sweep: every field of every seed document, each wrong type in turn ----------------------

# Random edits reach one field of a statement's 150 rarely; these sweep them all, one at a time.
SWAPS: list[Any] = [None, True, 0, -1, 10**400, 1.5, float("inf"), "", "x", [], {}, [[]], [{}]]
SWAPS += [*TIMES[:2], "9" * 5000]
# And each string field, strings that break the next reader: URL and path parsers, encoders.
STRING_SWAPS = ["git+file://[", "\x00", "\ud800", "a\nb", "%ff", "../../", "x" * 5000]
_GONE = object()  # the field removed


def sweep(doc: Any) -> list[Any]:
    """`doc` once for each of its values swapped for each of SWAPS, or removed."""
    return [json.loads(text) for text in sweep_texts(doc, ascii_only=True)]


def sweep_texts(doc: Any, *, ascii_only: bool = True) -> list[bytes]:
    """The same variants as JSON text: each edit made in place, dumped, then undone (copying
    the document for every variant costs seconds of the budget)."""
    doc = copy.deepcopy(doc)
    texts: list[bytes] = []

    def each(node: Any) -> None:
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, original in items:
            more = STRING_SWAPS if isinstance(original, str) else []
            for value in [*SWAPS, *more]:
                node[key] = value
                texts.append(dump(doc, ascii_only=ascii_only))
            if isinstance(node, dict):
                del node[key]
                texts.append(dump(doc, ascii_only=ascii_only))
                node.clear()
                node.update(items)  # back in the original order
            else:
                del node[key]
                texts.append(dump(doc, ascii_only=ascii_only))
                node.insert(key, original)
            node[key] = original
            if isinstance(original, dict | list):
                each(original)

    each(doc) if isinstance(doc, dict | list) else None
    return texts
