"""A live-clock session's results in the backtest's shape, so it leaves the same report.

The recorded cycles, fills and decision traces are turned into a RunResult (engine/sim) over the
stored bars and handed to the backtest's own ``build_results``.
"""
from __future__ import annotations

import json

import numpy as np

from engine.sim.fills import Fill
from engine.sim.result import RunResult
from engine.sim.settings import SimSettings
from engine.sim.results import build_results
from engine.cycle.prepare import prepare
from engine.trace import TraceRecorder, replay_cycle


def live_results(s, run_info: dict) -> dict | None:
    """None when no cycle has run yet (nothing to report)."""
    store = s.store
    cycles = store.rows("SELECT t, equity, exposure, trace FROM cycles ORDER BY t")
    if not cycles:
        return None
    from engine.live import feed
    market = feed.panel(store, s.timeframe, s.symbols, s.info, f"live:{s.mode}")
    p = prepare(market, s.reloader.rules)
    start, stop = cycles[0]["t"], min(cycles[-1]["t"] + 2, market.n_bars)
    if stop - start < 2:
        stop = min(start + 2, market.n_bars)
    k = stop - start
    equity, exposure = np.full(k, np.nan), np.full(k, np.nan)
    trace = TraceRecorder(p, start, stop)
    for c in cycles:
        i = c["t"] - start
        if i < k:
            equity[i], exposure[i] = c["equity"], c["exposure"]
        _replay_trace(trace, c["t"], json.loads(c["trace"] or "{}"), store, s.index)
    # bars without a cycle (skipped, or the last bar after the final decision) carry the last value
    last_eq, last_ex = s.initial_cash if not np.isfinite(equity[0]) else equity[0], 0.0
    for i in range(k):
        if np.isfinite(equity[i]):
            last_eq, last_ex = equity[i], exposure[i]
        else:
            equity[i], exposure[i] = last_eq, last_ex
    fills = [Fill(min(int(f["t"]), stop - 1),  # the bar it filled in
                   s.index[f["symbol"]], f["side"],
                  f["qty"], f["price"], f["fee"], f["slippage"], f["rule"] or "")
             for f in store.rows("SELECT * FROM fills ORDER BY t, time_ms, fill_id")]
    settings = SimSettings(initial_cash=float(store.get("meta", "session")["initial_cash"]),
                           slippage=s.costs.slippage, seed=s.costs.seed, start=start, stop=stop)
    res = RunResult(p, start, stop, equity, exposure, fills, s.pf, trace, settings)
    out = build_results(res, run_info)
    out["live"] = live_summary(store)
    return out


def _replay_trace(trace: TraceRecorder, t: int, tr: dict, store, index: dict) -> None:
    sides = None
    if "buy" not in tr:  # a cycle recorded before the trace carried its orders: the decisions table
        sides = {side: [index[r["symbol"]] for r in store.rows("SELECT symbol FROM decisions WHERE t=? AND side=?",
                                                                 (t, side))] for side in ("buy", "sell")}
    replay_cycle(trace, t, tr, sides)


def live_summary(store) -> dict:
    count = lambda sql: store.db.execute(sql).fetchone()[0]
    return {
        "cycles": count("SELECT COUNT(*) FROM cycles"),
        "orders": {r["status"]: r["n"] for r in store.rows("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")},
        "fills": count("SELECT COUNT(*) FROM fills"),
        "alerts": store.rows("SELECT wall_ms, t, level, kind, message FROM alerts ORDER BY id"),
        "rule_versions": store.rows("SELECT t, file, sha256, status, error FROM rule_versions ORDER BY id"),
        "sessions": store.rows("SELECT id, cycles, status FROM sessions ORDER BY id"),
        "state_file": str(store.path),
    }
