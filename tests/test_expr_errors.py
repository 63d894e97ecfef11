"""A corpus of broken rule expressions, each with its precise error: where, what, what was expected."""
from __future__ import annotations

import pytest

from tests.helpers.rules import compile_error

P = {"fast": 10, "slow": 50, "w": 0.1, "name": "meme", "on": True, "caps": {"a": 1}, "frac": 2.5, "big": 1e300}

# (expression, kind, fragment of the message, column, fragment of 'expected')
CORPUS = [
    ("close > smaa(close, 50)", "strategy", "unknown function 'smaa' (did you mean sma", 9, "one of"),
    ("clsoe > 1", "strategy", "unknown name 'clsoe' (did you mean 'close'", 1, None),
    ("close > params.fsat", "strategy", "unknown name 'params.fsat' (did you mean 'params.fast'", 9, "one of: params."),
    ("position.qyt > 0", "strategy", "unknown name 'position.qyt' (did you mean 'position.qty'", 1, None),
    ("portfolio.drawdown < -0.1", "universe", "unknown name 'portfolio.drawdown'", 1, None),
    ("order.notional > 10", "strategy", "unknown name 'order.notional'", 1, None),
    ("sma(close) > 1", "strategy", "sma() is missing argument 'n'", 1, "sma(x, n)"),
    ("sma(close, 5, 6) > 1", "strategy", "sma() takes at most 2 arguments, 3 given", 1, "sma(x, n)"),
    ("sma(close, m=5) > 1", "strategy", "sma() has no argument 'm'", 14, "sma(x, n)"),
    ("sma(close, 5, n=5) > 1", "strategy", "got argument 'n' twice", 17, None),
    ("max(close) > 1", "strategy", "max() takes at least 2 arguments, 1 given", 1, None),
    ("sma(close, 0) > 1", "strategy", "window 'n' of sma() is 0", 12, "a positive whole number of bars"),
    ("sma(close, 2.5) > 1", "strategy", "window 'n' of sma() is 2.5", 12, "a positive whole number of bars"),
    ("sma(close, params.frac) > 1", "strategy", "window 'n' of sma() is 2.5", 12, "positive whole number"),
    ("sma(close, 10000000) > 1", "strategy", "window 'n' of sma() is 1e+07 bars", 12, "at most 1,000,000 bars"),
    ("sma(close, volume) > 1", "strategy", "window 'n' of sma() must be a fixed number", 12, "positive whole number"),
    ("sma(close, params.on) > 1", "strategy", "window 'n' of sma() must be a fixed number", 12, None),
    ("sma(position.qty, 5) > 1", "strategy", "sma() needs a time series", 5, "an expression of market columns"),
    ("sma(available, 5) > 1", "strategy", "argument 'x' of sma() is a boolean", 5, "a number"),
    ("sma(1, 5) > 1", "strategy", "sma() got only constants", 1, "a time series argument"),
    ("close + available > 1", "strategy", "the right side of '+' is a boolean", 9, "a number"),
    ("close and volume", "strategy", "an operand of 'and' is a number", 1, "a boolean"),
    ("not close", "strategy", "the operand of 'not' is a number", 5, "a boolean"),
    ("close", "strategy", "the expression is a number", 1, "a boolean (true/false)"),
    ("theme > 3", "universe", "strings can only be compared with == or !=", 1, None),
    ("theme == 3", "universe", "'==' compares a string with a number", 10, "both sides strings"),
    ("regime == 'bul'", "universe", "regime 'bul' is not defined by the regime file", 11, "one of high_vol, bull, bear, chop"),
    ("regime in ['bull', 'beer']", "strategy", "regime 'beer' is not defined", 20, "one of high_vol"),
    ("theme in params.name", "universe", "the right side of 'in' must be a literal list", 10, "e.g."),
    ("theme in ['meme', 3]", "universe", "list item is a number but the left side is a string", 19, None),
    ("theme in ['meme', symbol]", "universe", "list items after 'in' must be literals", 19, None),
    ("(close if available else theme) == 1", "strategy", "the branches of 'if ... else' differ", 26, "same type"),
    ("close if volume else 1 > 0", "strategy", "the condition of 'if ... else' is a number", 10, "a boolean"),
    ("close > params.caps", "strategy", "'params.caps' is a mapping", 9, "a number, boolean or string parameter"),
    ("close > ", "strategy", "syntax error", None, "a Python-style expression"),
    ("close > 1 > ", "strategy", "syntax error", None, None),
    ("", "strategy", "empty expression", None, "an expression such as"),
    ("close > 1 & volume > 1", "strategy", "'&' is not the rule language's 'and'", 9, "'and'"),
    ("close > 1 | volume > 1", "strategy", "'|' is not the rule language's 'or'", 9, "'or'"),
    ("~available", "strategy", "'~' is not the rule language's 'not'", 1, "not x"),
    ("close ^ 2 > 1", "strategy", "'^' is not allowed (for a power write '**')", 1, None),
    ("close is None", "strategy", "'is' / 'is not' are not allowed", 1, "== or !="),
    ("theme in ['a'] == True", "universe", "'in' cannot be chained", 19, None),
    ("close ** 1000 > 1", "strategy", "exponent 1000 is too large", 10, "between -64 and 64"),
    ("close > 1" + "0" * 400, "strategy", "is out of range", 9, "magnitude <= 1e+15"),
    ("close > params.big", "strategy", "'params.big' = 1e+300 is out of range", 9, "finite number"),
    ("close > 1e999", "strategy", "number inf is out of range", 9, None),
    ("theme == '" + "x" * 300 + "'", "universe", "string literal is 300 characters long", 10, "at most 200"),
    ("theme in [" + ", ".join(["'a'"] * 300) + "]", "universe", "the list after 'in' has 300 items", 10, "at most 256"),
    ("max(" + ",".join(["1"] * 450) + ") > close", "strategy", "the expression has", 1, "at most 400"),
    ("close > " + "(" * 30 + "1" + " + 1)" * 30 + " + 1" * 30, "strategy", "nested more than 48 levels", None, "split it"),
    ("x" * 2500, "strategy", "expression is 2500 characters long", None, "at most 2000"),
    ("close > None", "strategy", "literal None is not allowed", 9, None),
    ("close > b'1'", "strategy", "literal b'1' is not allowed", 9, None),
    ("close > 1j", "strategy", "literal 1j is not allowed", 9, None),
    ("sma(close, params.fast)[0] > 1", "strategy", "indexing with [ ] is not allowed", 1, None),
]


@pytest.mark.parametrize("src,kind,message,col,expected", CORPUS, ids=[f"{i:02d}" for i in range(len(CORPUS))])
def test_broken_expression_gives_its_precise_error(src, kind, message, col, expected):
    err = compile_error(src, kind, P)
    text = str(err)
    assert message in err.message, text
    assert err.where.file == "rules/test.yaml" and err.where.rule == "r1" and err.where.key == "when"
    assert "rules/test.yaml" in text and "rule 'r1'" in text and "key 'when'" in text
    if col is not None:
        assert (err.line, err.col) == (1, col), text
        assert f"line 1 col {col}" in text
        # the caret points under the offending column
        assert text.splitlines()[-1] == "    " + " " * (col - 1) + "^"
    if expected is not None:
        assert err.expected is not None and expected in err.expected, text


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


def test_multi_line_expression_reports_the_line_inside_it():
    err = compile_error("close > 1 and\n  clsoe > 2", "strategy", P)
    assert (err.line, err.col) == (2, 3)
    assert "clsoe > 2" in str(err)
