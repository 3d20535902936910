"""calc: a small expression calculator (tokenizer, shunting-yard parser, evaluator)."""

from calc.core import CalcError, evaluate, to_rpn, tokenize

__all__ = ["CalcError", "evaluate", "to_rpn", "tokenize"]
