"""Make outside strings safe to print in a line-oriented human log.

Check names, reasons and other strings that come from a flake, a note or a bundle reach
stderr, $GITHUB_STEP_SUMMARY and CI logs. A newline or an escape sequence in one would let
an attacker forge lines (a fake `skip=true`) or repaint the terminal, so every place that
prints such a string passes it through `printable` first. JSON output needs no escaping
(json.dumps already escapes control characters) and keeps the raw value.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators and bidi
# overrides that reorder or break what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if c in named:
        return named[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(s: str) -> str:
    """`s` with every control character shown as a visible escape (`\\n`, `\\x1b`, ...).

    A backslash is left as it is: names are not parsed back, and doubling it would make
    ordinary Windows-style paths harder to read.
    """
    return _UNSAFE.sub(_escape, s)
