"""Evaluate arithmetic expressions exactly, with fractions: "1/3 + 1/6" is 1/2, not 0.5000001."""

from __future__ import annotations

import re
from fractions import Fraction

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|(\*\*|[-+*/()%]))")
# Unary minus binds looser than "**" (-2 ** 2 == -4, as in Python) and tighter than "*".
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2, "neg": 3, "**": 4}
_RIGHT = {"**", "neg"}


class CalcError(ValueError):
    """The expression is malformed or cannot be evaluated (division by zero)."""


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise CalcError(f"unexpected {text[pos:].strip()[:1]!r} at position {pos}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    if not tokens:
        raise CalcError("empty expression")
    return tokens


def to_rpn(tokens: list[str]) -> list[str]:
    """Shunting-yard: infix tokens to reverse Polish notation; unary minus becomes "neg"."""
    out: list[str] = []
    ops: list[str] = []
    prev = None
    for tok in tokens:
        if tok[0].isdigit():
            out.append(tok)
        elif tok == "(":
            ops.append(tok)
        elif tok == ")":
            while ops and ops[-1] != "(":
                out.append(ops.pop())
            if not ops:
                raise CalcError("unbalanced ')'")
            ops.pop()
        else:
            if tok == "-" and (prev is None or prev in _PRECEDENCE or prev == "("):
                tok = "neg"
            # A prefix operator has no left operand yet: it never pops anything.
            while tok != "neg" and ops and ops[-1] != "(" and (
                _PRECEDENCE[ops[-1]] > _PRECEDENCE[tok]
                or (_PRECEDENCE[ops[-1]] == _PRECEDENCE[tok] and tok not in _RIGHT)
            ):
                out.append(ops.pop())
            ops.append(tok)
        prev = tok
    while ops:
        op = ops.pop()
        if op == "(":
            raise CalcError("unbalanced '('")
        out.append(op)
    return out


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%") and b == 0:
        raise CalcError("division by zero")
    if op == "/":
        return a / b
    if op == "%":
        return a % b
    if b.denominator != 1:
        raise CalcError("only integer powers are exact")
    return a**b.numerator


def evaluate(text: str) -> Fraction:
    stack: list[Fraction] = []
    for tok in to_rpn(tokenize(text)):
        if tok[0].isdigit():
            stack.append(Fraction(tok))
        elif tok == "neg":
            if not stack:
                raise CalcError("'-' needs an operand")
            stack.append(-stack.pop())
        else:
            if len(stack) < 2:
                raise CalcError(f"{tok!r} needs two operands")
            b, a = stack.pop(), stack.pop()
            stack.append(_apply(tok, a, b))
    if len(stack) != 1:
        raise CalcError("missing operator")
    return stack[0]
