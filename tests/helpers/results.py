"""A factory for realistic ``results`` dicts (the backtest's contract with the report layer).

``make_results`` simulates a small market (geometric random walks, one late listing, one
gap), random round trips on it, the equity and exposure curves they imply, the
buy-and-hold benchmark, regimes, rule statistics and the run identity: everything
``write_run_outputs`` reads, consistent with itself, from a seed.
"""
from __future__ import annotations

import numpy as np

from engine.report.metrics import benchmark, compute_metrics
from engine.report.timeutil import ms_to_iso

THEMES = ("layer1", "defi", "meme", "ai", "gaming", "payments")
BASES = ("BTC", "ETH", "SOL", "DOGE", "LINK", "AVAX", "UNI", "FET", "AXS", "XRP", "ADA", "DOT", "ATOM",
         "NEAR", "APT", "ARB", "OP", "PEPE", "SHIB", "RNDR", "IMX", "SAND", "AAVE", "MKR", "LTC", "BCH",
         "XLM", "ALGO", "HBAR", "ICP", "FIL", "INJ", "SUI", "SEI", "TIA", "WIF", "BONK", "GRT", "LDO", "CRV")
RULES_OPEN = ("strategies/momentum.yaml:breakout", "strategies/momentum.yaml:pullback")
RULES_CLOSE = ("strategies/momentum.yaml:trail_stop", "strategies/momentum.yaml:take_profit",
               "risk.yaml:max_holding")
HOUR_MS = 3_600_000


def make_market(n_bars: int = 500, n_symbols: int = 5, seed: int = 0, start_ms: int = 1_704_067_200_000,
                timeframe_ms: int = HOUR_MS) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...], np.ndarray]:
    """(times, symbols, themes, close (T, N) with NaN before one late listing and in one gap)."""
    rng = np.random.default_rng(seed)
    times = start_ms + np.arange(n_bars, dtype=np.int64) * timeframe_ms
    symbols = tuple(f"{BASES[i % len(BASES)]}{'' if i < len(BASES) else i}/USDC" for i in range(n_symbols))
    themes = tuple(THEMES[i % len(THEMES)] for i in range(n_symbols))
    vol = rng.uniform(0.004, 0.02, n_symbols)
    steps = rng.normal(0.0001, 1.0, (n_bars, n_symbols)) * vol
    close = rng.uniform(0.5, 500.0, n_symbols) * np.exp(np.cumsum(steps, axis=0))
    if n_symbols > 2 and n_bars > 20:
        close[: n_bars // 5, n_symbols - 1] = np.nan  # listed late
        close[n_bars // 2: n_bars // 2 + 5, 1] = np.nan  # a halt
    return times, symbols, themes, close


def make_results(n_bars: int = 500, n_symbols: int = 5, n_trades: int = 20, seed: int = 0,
                 timeframe: str = "1h", initial_equity: float = 10_000.0, open_at_end: int = 1) -> dict:
    rng = np.random.default_rng(seed + 1)
    tf_ms = {"1h": HOUR_MS, "4h": 4 * HOUR_MS, "1d": 24 * HOUR_MS}[timeframe]
    times, symbols, themes, close = make_market(n_bars, n_symbols, seed, timeframe_ms=tf_ms)
    iso = ms_to_iso(times)
    ffill = _ffill(close)
    position_value = np.zeros(n_bars)
    pnl_curve = np.zeros(n_bars)
    fills: list[dict] = []
    round_trips: list[dict] = []
    fee_rate = 0.006
    for k in range(n_trades + open_at_end):
        j = int(rng.integers(n_symbols))
        listed = np.flatnonzero(np.isfinite(close[:, j]))
        if listed.size < 4:
            continue
        still_open = k >= n_trades
        entry = int(rng.choice(listed[: -2]))
        exit_ = n_bars - 1 if still_open else int(min(entry + rng.integers(1, max(2, n_bars // 8)), n_bars - 1))
        p_in, p_out = ffill[entry, j], ffill[exit_, j]
        qty = float(np.round(rng.uniform(0.02, 0.1) * initial_equity / p_in, 6))
        fee_in = qty * p_in * fee_rate
        fee_out = 0.0 if still_open else qty * p_out * fee_rate
        slip_in, slip_out = qty * p_in * 0.0005, (0.0 if still_open else qty * p_out * 0.0005)
        pnl = qty * (p_out - p_in) - fee_in - fee_out
        rule_in, rule_out = RULES_OPEN[k % 2], (None if still_open else RULES_CLOSE[k % 3])
        fills.append(_fill(symbols[j], "buy", iso[entry], qty, p_in, fee_in, slip_in, rule_in))
        if not still_open:
            fills.append(_fill(symbols[j], "sell", iso[exit_], qty, p_out, fee_out, slip_out, rule_out))
        round_trips.append({
            "symbol": symbols[j], "theme": themes[j], "entry_time": iso[entry],
            "exit_time": None if still_open else iso[exit_], "entry_price": float(p_in),
            "exit_price": None if still_open else float(p_out), "qty": qty, "pnl": float(pnl),
            "return": float(pnl / (qty * p_in)), "fees": float(fee_in + fee_out), "entry_rule": rule_in,
            "exit_rule": rule_out, "holding_hours": float((times[exit_] - times[entry]) / HOUR_MS),
        })
        held = slice(entry, exit_ + (1 if still_open else 0))
        position_value[held] += qty * ffill[held, j]
        pnl_curve[held] += qty * (ffill[held, j] - p_in) - fee_in
        if not still_open:
            pnl_curve[exit_:] += pnl
    fills.sort(key=lambda f: (f["time"], f["symbol"], f["side"]))
    equity = initial_equity + pnl_curve
    exposure = np.clip(position_value / equity, 0.0, 1.0)
    metrics = compute_metrics(times, equity, exposure, fills, round_trips, timeframe, initial_equity)
    bench_eq, bench = benchmark(times, close, timeframe, initial_equity)
    return {
        "metrics": metrics,
        "benchmark": bench,
        "trades": fills,
        "round_trips": round_trips,
        "equity": [[t, float(v)] for t, v in zip(iso, equity)],
        "benchmark_equity": [[t, float(v)] for t, v in zip(iso, bench_eq)],
        "exposure": [[t, float(v)] for t, v in zip(iso, exposure)],
        "regimes": _regimes(rng, iso),
        "rule_stats": {
            "universe.yaml:liquid": {"passed": n_bars * n_symbols - 40, "blocked": 40, "clipped": 0},
            "universe.yaml:tight_spread": {"passed": n_bars * n_symbols - 95, "blocked": 95, "clipped": 0},
            "risk.yaml:max_asset_weight": {"passed": 300, "blocked": 2, "clipped": 17},
            RULES_OPEN[0]: {"passed": 31, "blocked": 402, "clipped": 0},
            RULES_OPEN[1]: {"passed": 12, "blocked": 210, "clipped": 0},
        },
        "universe": {"rebuilds": max(1, n_bars // 24), "size_mean": round(n_symbols * 0.7, 2)},
        "run": {
            "seed": seed, "config_hash": f"cfg{seed:08x}", "data_hash": f"{seed:064x}", "engine_version": "0.1.0",
            "overrides": ["strategy=momentum", f"seed={seed}", "universe.params.top=10"],
            "config": {"mode": {"name": "backtest"}, "exchange": {"name": "coinbase", "api_key_env": "COINBASE_API_KEY"},
                       "strategy": {"name": "momentum", "params": {"lookback": 24, "threshold": 0.02}},
                       "universe": {"params": {"top": 10, "min_volume_usd": 5_000_000}}, "seed": seed},
            "mode": "backtest", "strategy": "momentum", "timeframe": timeframe, "start": iso[0], "end": iso[-1],
            "symbols": n_symbols,
        },
    }


def _fill(symbol, side, time, qty, price, fee, slippage, rule) -> dict:
    return {"symbol": symbol, "side": side, "time": time, "qty": qty, "price": float(price), "fee": float(fee),
            "slippage": float(slippage), "notional": float(qty * price), "rule": rule}


def _ffill(a: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(a), np.arange(a.shape[0])[:, None], 0)
    idx = np.maximum.accumulate(idx, axis=0)
    out = a[idx, np.arange(a.shape[1])]
    first = np.nanmean(a, axis=0)  # bars before listing: never traded, any finite value will do
    return np.where(np.isfinite(out), out, first)


def _regimes(rng: np.random.Generator, iso: list[str]) -> list[list[str]]:
    labels = ("bull", "chop", "bear")
    cuts = np.sort(rng.choice(np.arange(1, len(iso) - 1), size=min(6, max(len(iso) - 2, 0)), replace=False))
    bounds = [0, *cuts.tolist(), len(iso) - 1]
    return [[iso[a], iso[b], labels[i % 3]] for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
