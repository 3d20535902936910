"""Normalise a build log so that two honest builds of the same derivation hash the same.

The raw log (what `nix log` prints) carries clocks: dates, times of day, durations,
`time="..."` attributes of a JUnit report the check echoes, thread ids, addresses. Its
SHA-256 is recorded as the `build.log` byproduct; the SHA-256 of the normalised log is
recorded beside it as `build.log.normalised`. A rebuilder compares the latter.

The rules, applied in this order (documented in docs/test-results.md):

1. ISO-8601 timestamps (`2024-01-09T07:50:12.664+00:00`, `2026-11-23 13:20:35`) -> `<timestamp>`
2. `date`-style dates (`Mon Nov 23 13:21:52 UTC 2026`) -> `<date>`
3. times of day (`13:21:52`, `13:21:52.123`) -> `<time>`
4. key/value timings (`time="0.004"`, `duration_ms: 0.72`, `# duration_ms 111.7`,
   `elapsed=1.2`) -> the key with `<duration>` as value (quotes kept)
5. durations (`0.86s`, `12ms`, `1.5 seconds`, `0.001s`) -> `<duration>`
6. store path hashes (`/nix/store/<32 chars>-`) -> `/nix/store/<hash>-`
7. unsandboxed build dirs (`/tmp/nix-build-NAME.drv-0`) -> `/build`
8. thread ids (`thread 'x' (12874)`) -> `<tid>`; addresses (`0x7f3a...`, 8+ hex digits)
   -> `0x<addr>`

Bytes that are not UTF-8 pass through unchanged.
"""

from __future__ import annotations

import re

from provenance.formats.hashing import sha256_hex

_NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_KEYS = "time|duration|duration_ms|elapsed|elapsed_ms"
_UNITS = r"(?:ns|us|µs|ms|s|sec|secs|seconds?|min|minutes?)"

RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
        ),
        "<timestamp>",
    ),
    (
        re.compile(
            rf"\b(?:{_DAYS}),? (?:{_MONTHS}) [ \d]?\d "
            r"\d{2}:\d{2}:\d{2}(?: [A-Z]{2,5})? \d{4}\b"
        ),
        "<date>",
    ),
    (re.compile(r"(?<![\d.:])\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?![\d:])"), "<time>"),
    (re.compile(rf"\b({_KEYS})(\s*=\s*)\"[^\"]*\""), r'\1\2"<duration>"'),
    (re.compile(rf"\b({_KEYS})(\s*=\s*)'[^']*'"), r"\1\2'<duration>'"),
    (re.compile(rf"\b({_KEYS})(\s*=\s*|\s*:\s*|\s+)[0-9][0-9.]*(?:e-?\d+)?"), r"\1\2<duration>"),
    (re.compile(rf"(?<![\w.])\d+(?:\.\d+)?\s?{_UNITS}(?![\w])"), "<duration>"),
    (re.compile(rf"/nix/store/[{_NIX32}]{{32}}-"), "/nix/store/<hash>-"),
    (re.compile(r"/tmp/nix-build-[^/\s]+\.drv-\d+"), "/build"),  # noqa: S108 - a pattern, not a file
    (re.compile(r"(thread '[^'\n]*') \(\d+\)"), r"\1 (<tid>)"),
    (re.compile(r"\b0x[0-9a-fA-F]{8,}\b"), "0x<addr>"),
)


def normalise(log: bytes) -> bytes:
    """The log with clocks, durations, store hashes and the like replaced by placeholders."""
    text = log.decode("utf-8", errors="surrogateescape")
    for pattern, repl in RULES:
        text = pattern.sub(repl, text)
    return text.encode("utf-8", errors="surrogateescape")


def normalised_sha256(log: bytes) -> str:
    """Hex SHA-256 of `normalise(log)`: the `build.log.normalised` byproduct digest."""
    return sha256_hex(normalise(log))
