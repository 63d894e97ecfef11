"""Function registry of the rule language (interim: the full library lands with issue 3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

ArgType = Literal["series", "window", "number", "bool_series"]


@dataclass(frozen=True)
class Param:
    name: str
    type: ArgType
    default: float | int | None = None


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    kind: Literal["series", "elementwise"]
    params: tuple[Param, ...]
    returns: Literal["number", "bool"]
    impl: Callable
    doc: str
    example: str
    variadic: bool = False


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    c = np.nancumsum(np.where(np.isnan(x), 0.0, x), axis=0)
    valid = np.cumsum(~np.isnan(x), axis=0)
    out = np.full_like(x, np.nan)
    out[n - 1 :] = c[n - 1 :]
    out[n:] -= c[:-n]
    cnt = valid.copy()
    cnt[n:] -= valid[:-n]
    out[n - 1 :] /= n
    out[cnt < n] = np.nan
    out[: n - 1] = np.nan
    return out


def _sma(x, n):
    return _rolling_mean(x, n)


def _std(x, n):
    m = _rolling_mean(x, n)
    m2 = _rolling_mean(x * x, n)
    var = (m2 - m * m) * n / max(n - 1, 1)
    return np.sqrt(np.maximum(var, 0.0))


def _lag(x, n=1):
    out = np.full_like(x, np.nan)
    out[n:] = x[:-n]
    return out


def _pct_change(x, n=1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / _lag(x, n) - 1.0


def _crossover(a, b):
    pa, pb = _lag(a, 1), _lag(b, 1)
    return (a > b) & (pa <= pb)


def _crossunder(a, b):
    pa, pb = _lag(a, 1), _lag(b, 1)
    return (a < b) & (pa >= pb)


def _ema(x, n):
    alpha = 2.0 / (n + 1)
    out = np.full_like(x, np.nan)
    prev = np.full(x.shape[1:], np.nan)
    count = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        v = x[t]
        ok = ~np.isnan(v)
        count = np.where(ok, count + 1, count)
        prev = np.where(np.isnan(prev), v, np.where(ok, alpha * v + (1 - alpha) * prev, prev))
        out[t] = np.where(count >= n, prev, np.nan)
    return out


def _rsi(x, n=14):
    d = x - _lag(x, 1)
    up, down = np.clip(d, 0, None), np.clip(-d, 0, None)
    alpha = 1.0 / n
    au = np.full_like(x, np.nan)
    ad = np.full_like(x, np.nan)
    pu = np.full(x.shape[1:], np.nan)
    pd = np.full(x.shape[1:], np.nan)
    for t in range(x.shape[0]):
        pu = np.where(np.isnan(pu), up[t], alpha * up[t] + (1 - alpha) * pu)
        pd = np.where(np.isnan(pd), down[t], alpha * down[t] + (1 - alpha) * pd)
        au[t], ad[t] = pu, pd
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = au / ad
        return 100.0 - 100.0 / (1.0 + rs)


def _nan_guard(fn):
    def wrapped(*a):
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(*a)

    return wrapped


_S, _W, _N = "series", "window", "number"
FUNCTIONS: dict[str, FunctionSpec] = {
    f.name: f
    for f in [
        FunctionSpec("sma", "series", (Param("x", _S), Param("n", _W)), "number", _sma, "simple moving average", "sma(close, 50)"),
        FunctionSpec("ema", "series", (Param("x", _S), Param("n", _W)), "number", _ema, "exponential moving average", "ema(close, 20)"),
        FunctionSpec("std", "series", (Param("x", _S), Param("n", _W)), "number", _std, "rolling sample std", "std(close, 20)"),
        FunctionSpec("rsi", "series", (Param("x", _S), Param("n", _W, 14)), "number", _rsi, "RSI", "rsi(close, 14)"),
        FunctionSpec("lag", "series", (Param("x", _S), Param("n", _W, 1)), "number", _lag, "value n bars ago", "lag(close, 1)"),
        FunctionSpec("pct_change", "series", (Param("x", _S), Param("n", _W, 1)), "number", _pct_change, "return over n bars", "pct_change(close, 24)"),
        FunctionSpec("crossover", "series", (Param("a", _S), Param("b", _S)), "bool", _crossover, "a crosses above b", "crossover(sma(close,10), sma(close,30))"),
        FunctionSpec("crossunder", "series", (Param("a", _S), Param("b", _S)), "bool", _crossunder, "a crosses below b", "crossunder(sma(close,10), sma(close,30))"),
        FunctionSpec("abs", "elementwise", (Param("x", _N),), "number", np.abs, "absolute value", "abs(x)"),
        FunctionSpec("sqrt", "elementwise", (Param("x", _N),), "number", _nan_guard(np.sqrt), "square root", "sqrt(x)"),
        FunctionSpec("log", "elementwise", (Param("x", _N),), "number", _nan_guard(np.log), "natural log", "log(x)"),
        FunctionSpec("min", "elementwise", (Param("a", _N), Param("b", _N)), "number", np.minimum, "smaller of", "min(a, b)", variadic=True),
        FunctionSpec("max", "elementwise", (Param("a", _N), Param("b", _N)), "number", np.maximum, "larger of", "max(a, b)", variadic=True),
        FunctionSpec("clip", "elementwise", (Param("x", _N), Param("lo", _N), Param("hi", _N)), "number", np.clip, "bound x", "clip(x, 0, 1)"),
    ]
}
