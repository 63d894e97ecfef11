"""Shadow comparison: replay a dry_run's, paper's or live account's period as a backtest on the
very bars it decided on, and report every decision that differs (regime, which symbols were
bought or sold, fills).

The dry_run's virtual portfolio and paper's simulated broker fill like the backtest, so on a
clean run the two agree exactly; a difference means live and backtest would diverge (stale
quotes, skipped bars, changed rules, different data) and is caught before money is at risk.
A live account's fills are the exchange's: they differ from the fill model's by what the market
really did (and its burn-in scales entries), which is what its shadow shows.
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from engine.cycle.prepare import prepare
from engine.fileio import atomic_write_text
from engine.live.errors import LiveError
from engine.live.store import StateStore
from engine.sim.settings import SimSettings
from engine.market.data import MarketData, SymbolInfo, iso_utc, timeframe_ms
from engine.rules.loader import RuleSet
from engine.trace import BUY, SELL

REL_TOL = 1e-9


def stored_market(store: StateStore, pad: bool = True) -> MarketData:
    """The bars a dry_run decided on (plus one empty bar, so the backtest also decides at the last one:
    a backtest never decides at its final bar, having nothing to fill at)."""
    meta = store.get("meta", "session")
    symbols = list(meta["symbols"])
    times, data = store.bars(len(symbols))
    if pad:
        times = np.append(times, times[-1] + timeframe_ms(meta["timeframe"]))
        data = np.concatenate([data, np.full((1, 6, len(symbols)), np.nan)])
    cols = [np.ascontiguousarray(data[:, k, :]) for k in range(6)]
    # the product facts the session decided with (the exchange's, combined with the product table);
    # state files from before the table recorded only the exchange's
    used = store.get("state", "product_facts")
    info = tuple(SymbolInfo(**i) for i in (used["info"] if used else meta["info"]))
    return MarketData(meta["timeframe"], times, tuple(symbols), *cols, info=info, source=f"live:{meta['mode']}")


def compare(store: StateStore, rules: RuleSet, cfg: Mapping[str, Any], replay: Callable, mode: str = "dry_run") -> dict:
    """``replay(prepared, settings)``: the backtest (engine/modes passes ``run_backtest``; live
    imports nothing from engine/backtest). ``mode``: the account's mode (dry_run, paper, live);
    the differences name the account's side by it."""
    meta = store.get("meta", "session")
    if meta is None or meta.get("mode") != mode:
        raise LiveError(f"{store.path} is not a {mode} state file (found mode {None if meta is None else meta.get('mode')!r}); "
                        f"the shadow comparison replays the {mode} account it was asked for (mode.state)")
    cycles = store.rows("SELECT t, regime, rules_hash FROM cycles ORDER BY t")
    if not cycles:
        raise LiveError(f"{store.path} holds no cycle yet; run mode={mode} first")
    market = stored_market(store)
    p = prepare(market, rules)
    start, last = cycles[0]["t"], cycles[-1]["t"]
    # the backtest's own settings (fees, slippage, participation, seed) over the dry_run's bars and cash
    costs = SimSettings.from_run_config(cfg)
    settings = dataclasses.replace(costs, initial_cash=float(meta["initial_cash"]), start=start, stop=last + 2)
    res = replay(p, settings)
    sym = market.symbols
    diffs: list[dict] = []

    def diff(t: int, what: str, symbol: str | None, mine: Any, back: Any) -> None:
        diffs.append({"t": int(t), "time": iso_utc(int(market.times[t])), "what": what, "symbol": symbol,
                      mode: mine, "backtest": back})

    recorded = {c["t"]: c for c in cycles}
    for t in range(start, last + 1):
        if t not in recorded:
            diff(t, "cycle", None, "no cycle", "decided")
        elif recorded[t]["regime"] != p.regime_labels[p.regime_idx[t]]:
            diff(t, "regime", None, recorded[t]["regime"], p.regime_labels[p.regime_idx[t]])
    # which symbols each side decided on, per bar
    back = {(t, side): set(sym[i] for i in idx) for side in (BUY, SELL) for t, idx in res.trace.bars_of(side)}
    dry: dict = defaultdict(set)
    for r in store.rows("SELECT t, symbol, side FROM decisions"):
        dry[(r["t"], r["side"])].add(r["symbol"])
    for key in sorted(set(back) | set(dry)):
        t, side = key
        for s in sorted(dry.get(key, set()) ^ back.get(key, set())):
            diff(t, side, s, s in dry.get(key, set()), s in back.get(key, set()))
    # fills (quantity and price) — equal when the decisions and the fill model agree
    bf = {(f.t, sym[f.symbol_idx], f.side): (f.qty, f.price) for f in res.fills}
    df = {(r["t"], r["symbol"], r["side"]): (r["qty"], r["price"]) for r in store.rows("SELECT t, symbol, side, qty, price FROM fills")}
    for key in sorted(set(bf) | set(df)):
        a, b = df.get(key), bf.get(key)
        if a is None or b is None or not np.allclose(a, b, rtol=REL_TOL, atol=0):
            diff(key[0], "fill", f"{key[1]} {key[2]}", a, b)
    hashes = sorted({c["rules_hash"] for c in cycles})
    return {
        "state_file": str(store.path), "mode": mode, "cycles": len(cycles), "start": iso_utc(int(market.times[start])),
        "end": iso_utc(int(market.times[last])), "differences": diffs, "n_differences": len(diffs),
        "rule_versions_during_run": hashes,
        "backtest_fills": len(res.fills), f"{mode}_fills": len(df),
        "_result": res,
    }


def write_report(out_dir: Path, report: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "shadow.json"
    body = {k: v for k, v in report.items() if not k.startswith("_")}
    return atomic_write_text(path, json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
