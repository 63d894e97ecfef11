"""A tiny, safe expression language for the declarative sanity checks.

Expressions use Python syntax, parsed with `ast` and checked against a whitelist; nothing is
eval'ed. Dotted names (`risk.params.max_total_exposure`) read the config; `key`/`value` are the
entry being checked by a `for_each`; a few helper functions are provided by the caller.
A name that is missing, or an operation on values of the wrong type, raises Skip: the schema
pass has already reported that, so the sanity check stays silent.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import paths


class Skip(Exception):
    """The check cannot be evaluated (missing or mistyped input); not a finding."""


class PredicateSyntaxError(ValueError):
    """A sanity check's expression uses syntax outside the whitelist (a bug in the check file)."""


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}

# Functions whose arguments may be missing config keys (they receive paths.MISSING, not a Skip).
RAW_ARG_FUNCTIONS = frozenset({"is_set", "value_or"})

Env = Mapping[str, Any]  # evaluation scope: 'cfg', 'vars' (key/value), 'funcs'
Fn = Callable[[Env], Any]


@dataclass(frozen=True)
class Predicate:
    source: str
    fn: Fn
    refs: tuple[str, ...]  # dotted config paths the expression reads

    def __call__(self, scope: Env) -> Any:
        try:
            return self.fn(scope)
        except Skip:
            raise
        except (TypeError, ValueError, ZeroDivisionError, KeyError, IndexError, AttributeError, OverflowError):
            raise Skip(self.source) from None


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _strict(v: Any) -> Any:
    if v is paths.MISSING:
        raise Skip("missing")
    return v


def compile_predicate(source: str, functions: frozenset[str] = frozenset(),
                      local_names: frozenset[str] = frozenset({"key", "value"})) -> Predicate:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise PredicateSyntaxError(f"cannot parse {source!r}: {exc.msg}") from None
    refs: list[str] = []

    def build(node: ast.AST, *, raw: bool = False) -> Fn:
        # raw=True: a missing name yields paths.MISSING instead of Skip (for is_set()).
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
            c = node.value
            return lambda s: c
        if isinstance(node, (ast.Name, ast.Attribute)):
            dotted = _dotted(node)
            if dotted is None:
                raise PredicateSyntaxError(f"unsupported attribute access in {source!r}")
            head, _, rest = dotted.partition(".")
            if head in local_names:
                if rest:
                    raise PredicateSyntaxError(f"'{head}' has no attributes in {source!r}")
                return (lambda s: s["vars"].get(head, paths.MISSING)) if raw else (lambda s: _strict(s["vars"].get(head, paths.MISSING)))
            refs.append(dotted)
            if raw:
                return lambda s: paths.get(s["cfg"], dotted)
            return lambda s: _strict(paths.get(s["cfg"], dotted))
        if isinstance(node, ast.BoolOp):
            parts = [build(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda s: all(p(s) for p in parts)
            return lambda s: any(p(s) for p in parts)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            op, operand = _UNARY[type(node.op)], build(node.operand)
            return lambda s: op(operand(s))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            op, left, right = _BINOPS[type(node.op)], build(node.left), build(node.right)
            return lambda s: op(left(s), right(s))
        if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
            first = build(node.left)
            rest = [(_CMPOPS[type(o)], build(c)) for o, c in zip(node.ops, node.comparators)]

            def compare(s):
                a = first(s)
                for op, nxt in rest:
                    b = nxt(s)
                    if not op(a, b):
                        return False
                    a = b
                return True
            return compare
        if isinstance(node, ast.IfExp):
            test, body, orelse = build(node.test), build(node.body), build(node.orelse)
            return lambda s: body(s) if test(s) else orelse(s)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [build(e) for e in node.elts]
            return lambda s: [i(s) for i in items]
        if isinstance(node, ast.Subscript):
            target, index = build(node.value), build(node.slice)
            return lambda s: target(s)[index(s)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name = node.func.id
            if name not in functions:
                raise PredicateSyntaxError(f"unknown function {name}() in {source!r}; known: {', '.join(sorted(functions))}")
            # is_set()/value_or() must see a missing key as "not set" rather than skip the whole check.
            args = [build(a, raw=(name in RAW_ARG_FUNCTIONS)) for a in node.args]

            def call(s):
                return s["funcs"][name](*[a(s) for a in args])
            return call
        raise PredicateSyntaxError(f"unsupported syntax {type(node).__name__} in {source!r}")

    fn = build(tree.body)
    return Predicate(source, fn, tuple(dict.fromkeys(refs)))
