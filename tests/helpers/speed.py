"""Factories for the speed-equivalence tests: seeded panels and markets with the shapes that
exercise every branch of the fast kernels (NaN listing prefixes, holes, flat and never-valid
columns, narrow and wide panels), and a digest that tells two arrays apart bit for bit. Draws
and exp go through engine.detmath, so the panels (and the digests pinned over them) are the
same bits on every CPU."""
from __future__ import annotations

import hashlib

import numpy as np

from engine import detmath
from engine.cycle.prepare import select_members
from engine.market.data import MarketData, SymbolInfo

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00Z
HOUR_MS = 3_600_000

# (bars, columns, holes, listing prefixes): narrow (scipy path) and wide (row-loop path) panels
PANEL_SHAPES = [(500, 7, False, True), (500, 7, True, True), (300, 40, False, False),
                (1000, 33, True, False), (50, 3, False, True), (3, 2, False, False), (1, 1, False, False)]

# every series function of the rule language, with the arguments each is called with
SERIES_CALLS = [("sma", (5,)), ("sma", (48,)), ("sma", (1,)), ("rolling_sum", (7,)), ("wma", (6,)),
                ("std", (9,)), ("zscore", (9,)), ("ema", (10,)), ("rsi", (14,)), ("lag", (3,)),
                ("pct_change", (1,)), ("pct_change", (600,)), ("returns", (5,)), ("rolling_max", (8,)),
                ("rolling_min", (30,)), ("crossover", None), ("crossunder", None), ("atr", None),
                ("bars_since", None)]


def digest(a) -> str:
    """dtype, shape and bytes of an array: equal digests mean bit-identical arrays."""
    a = np.ascontiguousarray(np.asarray(a))
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:24]


def price_panel(shape_index: int, seed: int = 3) -> np.ndarray:
    """Panel ``PANEL_SHAPES[shape_index]``: random-walk prices with its NaN pattern."""
    rng = np.random.default_rng(seed + shape_index)
    t, n, holes, prefix = PANEL_SHAPES[shape_index]
    x = 100 * detmath.exp(np.cumsum(0.01 * detmath.standard_normal(rng, (t, n)), axis=0))
    if prefix:
        for j in range(n):
            x[: rng.integers(0, max(t // 2, 1)), j] = np.nan
        if n > 2:
            x[:, 1] = np.nan  # never listed
    if holes:
        x[rng.random((t, n)) < 0.02] = np.nan
    if t > 5 and n > 3:
        x[3:, 2] = x[3, 2]  # flat
    return x


def call_series(functions: dict, name: str, args, x: np.ndarray) -> np.ndarray:
    f = functions[name].impl
    if name in ("crossover", "crossunder"):
        return f(x, functions["sma"].impl(x, 3))
    if name == "atr":
        return f(x * 1.01, x * 0.99, x, 5)
    if name == "bars_since":
        return f(x > 100)
    return f(x, *args)


def panel_market(n_symbols: int = 90, n_bars: int = 400, seed: int = 11) -> MarketData:
    """A market with late listings, single-bar gaps, a halted stretch and a stablecoin theme."""
    rng = np.random.default_rng(seed)
    close = 50 * detmath.exp(np.cumsum(0.02 * detmath.standard_normal(rng, (n_bars, n_symbols)), axis=0))
    open_ = close * (1 + 0.002 * detmath.standard_normal(rng, close.shape))
    high = np.maximum(open_, close) * 1.003
    low = np.minimum(open_, close) * 0.997
    volume = detmath.exp(8 + detmath.standard_normal(rng, close.shape))
    spread = detmath.uniform(rng, 1, 30, close.shape)
    for j in range(0, n_symbols, 9):
        cut = int(rng.integers(1, n_bars // 2))
        for a in (open_, high, low, close, volume, spread):
            a[:cut, j] = np.nan
    gaps = rng.random(close.shape) < 0.01
    for a in (open_, high, low, close, volume, spread):
        a[gaps] = np.nan
        a[100:130, 4] = np.nan
    themes = ["stablecoin", "L1", "meme", "DeFi", "AI"]
    info = tuple(SymbolInfo(f"S{j:03d}/USDC", themes[j % len(themes)], 0.0001, 1e-6, 1.0)
                 for j in range(n_symbols))
    return MarketData(timeframe="1h", times=T0_MS + np.arange(n_bars, dtype=np.int64) * HOUR_MS,
                      symbols=tuple(i.symbol for i in info), open=open_, high=high, low=low, close=close,
                      volume=volume, spread_bps=spread, info=info, source="test")


def reference_universe(u, times: np.ndarray, eligible: np.ndarray, key: np.ndarray | None,
                       regime_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The universe cache bar by bar, as the rule reads: rebuild when the TTL has run out on the
    run's clock or the regime changed since the last rebuild (the reference for the jumping one).

    Only the cadence is under test here: one rebuild's selection is the production
    ``select_members`` (it has no fast path to check against)."""
    t_n, n = eligible.shape
    member = np.zeros((t_n, n), dtype=bool)
    rebuilds = np.zeros(t_n, dtype=bool)
    last_t, last_regime, current = None, None, np.zeros(n, dtype=bool)
    for t in range(t_n):
        if (last_t is None or times[t] - times[last_t] >= u.ttl_ms
                or (u.rebuild_on_regime_change and regime_idx[t] != last_regime)):
            current = select_members(u, eligible[t], None if key is None else key[t])
            rebuilds[t] = True
            last_t, last_regime = t, regime_idx[t]
        member[t] = current
    return member, rebuilds
