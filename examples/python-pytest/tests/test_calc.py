import re
from fractions import Fraction

import pytest

from calc import CalcError, evaluate, to_rpn, tokenize


def test_tokenize():
    assert tokenize("12 + 3.5*(2)") == ["12", "+", "3.5", "*", "(", "2", ")"]


@pytest.mark.parametrize(
    "expr,rpn",
    [
        ("1 + 2 * 3", ["1", "2", "3", "*", "+"]),
        ("(1 + 2) * 3", ["1", "2", "+", "3", "*"]),
        ("2 ** 3 ** 2", ["2", "3", "2", "**", "**"]),
        ("-2 ** 2", ["2", "2", "**", "neg"]),
    ],
)
def test_to_rpn(expr, rpn):
    assert to_rpn(tokenize(expr)) == rpn


@pytest.mark.parametrize(
    "expr,value",
    [
        ("1 + 2 * 3", 7),
        ("1/3 + 1/6", Fraction(1, 2)),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("2 ** 3 ** 2", 512),
        ("7 % 3 - -1", 2),
        ("-(4 - 6) * 2", 4),
        ("-2 ** 2", -4),
        ("2 ** -1", Fraction(1, 2)),
    ],
)
def test_evaluate(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    "expr,message",
    [
        ("", "empty expression"),
        ("1 / 0", "division by zero"),
        ("(1 + 2", "unbalanced '('"),
        ("1 + 2)", "unbalanced ')'"),
        ("1 2", "missing operator"),
        ("2 ** 0.5", "integer powers"),
        ("3 $ 4", "unexpected '$'"),
    ],
)
def test_errors(expr, message):
    with pytest.raises(CalcError, match=re.escape(message)):
        evaluate(expr)
