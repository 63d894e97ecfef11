"""How many bars of history a prepared rule set reads at most: the slowest feature's look-back.

Read from the feature store's keys (the canonical text of every computed feature, e.g.
``crossover(sma(close, 48), sma(close, 240))``): a call to a windowed function looks back its
window arguments plus the look-back of its series arguments (``sma(sma(close, 10), 5)`` reads
14 bars before t, counted as 15). An exponential average counts its span as its window.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterable

from engine.rules.functions import FUNCTIONS


@dataclass(frozen=True)
class Lookback:
    bars: int
    feature: str  # the feature that needs them ("" when no feature is windowed)


def _bars(node: ast.AST) -> int:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        spec = FUNCTIONS[node.func.id]
        own, inner = 0, 0
        for i, arg in enumerate(node.args):
            ptype = spec.params[min(i, len(spec.params) - 1)].type if spec.params else "series"
            if ptype == "window" and isinstance(arg, ast.Constant) and isinstance(arg.value, (int, float)):
                own += int(arg.value)
            else:
                inner = max(inner, _bars(arg))
        return own + inner
    return max((_bars(c) for c in ast.iter_child_nodes(node)), default=0)


def feature_lookback(keys: Iterable[str]) -> Lookback:
    best = Lookback(0, "")
    for key in keys:
        try:
            tree = ast.parse(key, mode="eval")
        except SyntaxError:  # a base series name or a constant's text
            continue
        n = _bars(tree)
        if n > best.bars:
            best = Lookback(n, key)
    return best
