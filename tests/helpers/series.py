"""Small named factories of (time x symbol) panels for the function-library tests.

Every factory is seeded and returns fresh arrays, so a test may modify what it gets.
"""
from __future__ import annotations

import numpy as np

from engine.rules.functions import FUNCTIONS, FunctionSpec


def random_panel(t: int, n: int, seed: int, nan_prefix: bool = True, level: float = 100.0,
                 vol: float = 0.02) -> np.ndarray:
    """(t, n) random-walk prices around ``level``; with ``nan_prefix`` each column but the first
    starts (is listed) at its own row, NaN before it, like symbols listed at different times."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, vol, size=(t, n))
    x = level * np.exp(np.cumsum(steps, axis=0)) * rng.uniform(0.5, 2.0, size=n)
    if nan_prefix and n > 1:
        starts = rng.integers(0, max(t // 2, 1), size=n)
        starts[0] = 0
        x[np.arange(t)[:, None] < starts[None, :]] = np.nan
    return x


def ohlc_panel(t: int, n: int, seed: int, nan_prefix: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, close) consistent with each other (low <= close <= high), NaN on the same rows."""
    close = random_panel(t, n, seed, nan_prefix)
    rng = np.random.default_rng(seed + 1)
    high = close * (1.0 + rng.uniform(0.0, 0.03, size=close.shape))
    low = close * (1.0 - rng.uniform(0.0, 0.03, size=close.shape))
    return high, low, close


def bool_panel(t: int, n: int, seed: int, p: float = 0.1) -> np.ndarray:
    """(t, n) booleans, True with probability ``p``."""
    return np.random.default_rng(seed).random((t, n)) < p


def with_holes(x: np.ndarray, seed: int, frac: float = 0.02) -> np.ndarray:
    """A copy of ``x`` with a fraction of its cells set to NaN anywhere (gaps, halts)."""
    rng = np.random.default_rng(seed)
    out = x.copy()
    out[rng.random(x.shape) < frac] = np.nan
    return out


def flat_panel(t: int, n: int, value: float = 1.0) -> np.ndarray:
    """(t, n) of one constant price: a stale or pegged product."""
    return np.full((t, n), value)


def perturb_after(x: np.ndarray, row: int, seed: int) -> np.ndarray:
    """A copy of ``x`` whose rows after ``row`` are changed: scaled, shifted, some made NaN
    (booleans are flipped). Rows <= ``row`` are untouched."""
    rng = np.random.default_rng(seed)
    out = x.copy()
    tail = out[row + 1:]
    if out.dtype == np.bool_:
        out[row + 1:] = ~tail
        return out
    tail *= rng.uniform(0.2, 5.0, size=tail.shape)
    tail += rng.normal(0.0, 10.0, size=tail.shape)
    tail[rng.random(tail.shape) < 0.1] = np.nan
    return out


def series_functions() -> list[str]:
    return [name for name, s in FUNCTIONS.items() if s.kind == "series"]


def args_for(spec: FunctionSpec, t: int, n: int, seed: int, window: int = 5) -> list:
    """Plausible positional arguments for any registered series function: prices for series
    params (high/low/close consistent), booleans for bool_series, ``window`` for windows and the
    default (or 1.0) for numbers."""
    high, low, close = ohlc_panel(t, n, seed)
    named = {"high": high, "low": low, "close": close}
    other = random_panel(t, n, seed + 7)
    args: list = []
    used_series = 0
    for p in spec.params:
        if p.type == "series":
            args.append(named.get(p.name, close if used_series == 0 else other).copy())
            used_series += 1
        elif p.type == "bool_series":
            args.append(bool_panel(t, n, seed + 11))
        elif p.type == "window":
            args.append(window)
        else:
            args.append(1.0 if p.default is None else p.default)
    return args
