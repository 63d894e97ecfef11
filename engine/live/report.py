"""A live-clock session's results in the backtest's shape, so it leaves the same report.

The recorded cycles, fills and decision traces are turned into a RunResult (engine/sim) over the
stored bars and handed to the backtest's own ``build_results``.
"""
from __future__ import annotations

import json

import numpy as np

from engine.sim.fills import Fill, ParticipationCuts
from engine.sim.result import RunResult
from engine.sim.settings import SimSettings
from engine.sim.results import build_results
from engine.cycle.prepare import prepare
from engine.trace import TraceRecorder, replay_cycle


def live_results(s, run_info: dict) -> dict | None:
    """None when no cycle has run yet (nothing to report)."""
    res = stored_result(s.store, s.reloader.rules, s.costs, s.info)
    if res is None:
        return None
    out = build_results(res, run_info)
    out["live"] = live_summary(s.store)
    return out


def stored_result(store, rules, costs: SimSettings, info=None, pad: bool = False) -> RunResult | None:
    """A session's recorded cycles, fills and traces over its stored bars, as a RunResult: what a
    session's report is built from, and what mode=explain reads a paper or live account from.
    ``info``: the product facts (default: those the session recorded). None: no cycle yet."""
    from engine.live import pstate
    from engine.live.shadow import stored_market

    cycles = store.rows("SELECT t, equity, exposure, trace FROM cycles ORDER BY t")
    if not cycles:
        return None
    meta = store.get("meta", "session")
    index = {sym: j for j, sym in enumerate(meta["symbols"])}
    # pad: one empty bar after the newest, so the newest cycle is a decided bar of the result (explain)
    market = stored_market(store, pad=pad)
    if info is not None:
        market.info = info
    p = prepare(market, rules)
    start, stop = cycles[0]["t"], min(cycles[-1]["t"] + 2, market.n_bars)
    if stop - start < 2:
        stop = min(start + 2, market.n_bars)
    k = stop - start
    equity, exposure = np.full(k, np.nan), np.full(k, np.nan)
    trace = TraceRecorder(p, start, stop)
    initial_cash = float(meta["initial_cash"])
    for c in cycles:
        i = c["t"] - start
        if i < k:
            equity[i], exposure[i] = c["equity"], c["exposure"]
        _replay_trace(trace, c["t"], json.loads(c["trace"] or "{}"), store, index)
    # bars without a cycle (skipped, or the last bar after the final decision) carry the last value
    last_eq, last_ex = initial_cash if not np.isfinite(equity[0]) else equity[0], 0.0
    for i in range(k):
        if np.isfinite(equity[i]):
            last_eq, last_ex = equity[i], exposure[i]
        else:
            equity[i], exposure[i] = last_eq, last_ex
    fills = [Fill(min(int(f["t"]), stop - 1),  # the bar it filled in
                  index[f["symbol"]], f["side"],
                  f["qty"], f["price"], f["fee"], f["slippage"], f["rule"] or "")
             for f in store.rows("SELECT * FROM fills ORDER BY t, time_ms, fill_id")]
    settings = SimSettings(initial_cash=initial_cash, slippage=costs.slippage, seed=costs.seed, start=start, stop=stop)
    pf, _ = pstate.load(store.get("state", "portfolio"))
    # what the participation cap cut, counted by the fill model of paper and dry_run (live: none)
    cuts = store.get("state", "participation")
    stats = {"participation": ParticipationCuts(**cuts).as_dict(costs.max_participation)} if cuts else {}
    return RunResult(p, start, stop, equity, exposure, fills, pf, trace, settings, stats)


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


def write_explainable(store, rules, costs: SimSettings, config: dict, out_dir) -> bool:
    """``trace.npz`` and ``results.json`` of a session, in the shape mode=explain reads a backtest's
    outputs in (its newest cycle included). False: no cycle yet."""
    from pathlib import Path

    from engine.report.jsonio import write_json

    res = stored_result(store, rules, costs, pad=True)
    if res is None:
        return False
    out_dir = Path(out_dir)
    res.trace.save(out_dir / "trace.npz")
    # the rule files as the account last loaded them: explain notes a file edited since
    hashes = {r["file"]: r["sha256"] for r in store.rows("SELECT file, sha256 FROM rule_versions "
                                                        "WHERE status='loaded' ORDER BY id")}
    write_json(out_dir / "results.json", build_results(res, {"config": config, "rule_files": hashes}))
    return True
