"""Turn a RunResult (a backtest or a live-clock session) into the run's results dict (the JSON every report reads)."""
from __future__ import annotations


import numpy as np

from engine.sim.fills import fill_to_dict
from engine.sim.result import RunResult
from engine.market.data import iso_utc, iso_utc_all, timeframe_ms
from engine.report.metrics import benchmark_metrics, compute_metrics
from engine.sim.summary import RunSummary, window_last_close


def run_summary(res: RunResult) -> RunSummary:
    """The window's facts: gathered chunk by chunk by a chunked backtest, else from the whole
    prepared run (the one-chunk case), once."""
    if res.summary is None:
        res.summary = RunSummary.of(res.prepared, res.start, res.stop, res.settings.initial_cash, res.fills)
    return res.summary


def round_trips(res: RunResult) -> list[dict]:
    """Entry-to-exit trades per symbol from the fills (partial fills grouped)."""
    m = res.prepared.market
    hours_per_bar = timeframe_ms(m.timeframe) / 3_600_000
    inc = res.prepared.size_increment
    open_: dict[int, dict] = {}
    out: list[dict] = []
    for f in res.fills:
        i = f.symbol_idx
        if f.side == "buy":
            rt = open_.get(i)
            if rt is None:
                rt = open_[i] = {"t0": f.t, "qty": 0.0, "cost": 0.0, "fees": 0.0, "proceeds": 0.0,
                                 "sold": 0.0, "left": 0.0, "entry_rule": f.rule, "exit_rule": "", "t1": None}
            rt["qty"] += f.qty
            rt["left"] = rt["left"] + f.qty
            rt["cost"] += f.qty * f.price
            rt["fees"] += f.fee
        else:
            rt = open_.get(i)
            if rt is None:
                continue
            rt["sold"] += f.qty
            rt["proceeds"] += f.qty * f.price
            rt["fees"] += f.fee
            rt["exit_rule"] = f.rule
            # closed when the broker left the position flat: the same arithmetic as its
            # ``qty -= q`` (sums of partial fills differ from it by rounding on large quantities)
            rt["left"] = rt["left"] - f.qty
            if rt["left"] <= inc[i] * 1e-6:
                rt["t1"] = f.t
                out.append(_trip(res, i, rt, hours_per_bar))
                del open_[i]
    last_close = None
    if open_:  # open at the end: marked at the last close
        last_close = window_last_close(res.summary, res.prepared, res.stop)
    for i, rt in sorted(open_.items()):
        out.append(_trip(res, i, rt, hours_per_bar, last_close))
    out.sort(key=lambda r: (r["entry_time"], r["symbol"]))
    return out


def _trip(res: RunResult, i: int, rt: dict, hours_per_bar: float, last_close: np.ndarray | None = None) -> dict:
    m = res.prepared.market
    entry_price = rt["cost"] / rt["qty"]
    closed = rt["t1"] is not None
    if closed:
        exit_price = rt["proceeds"] / rt["sold"]
        pnl = rt["proceeds"] - rt["cost"] - rt["fees"]
        end_t = rt["t1"]
    else:  # still open at the end: marked at the last close, exit fields empty
        last = float(last_close[i])
        exit_price = None
        pnl = rt["proceeds"] + (rt["qty"] - rt["sold"]) * last - rt["cost"] - rt["fees"]
        end_t = res.stop - 1
    return {
        "symbol": m.symbols[i],
        "theme": m.info[i].theme,
        "entry_time": iso_utc(int(m.times[rt["t0"]])),
        "exit_time": iso_utc(int(m.times[rt["t1"]])) if closed else None,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "qty": rt["qty"],
        "pnl": pnl,
        "return": pnl / rt["cost"] if rt["cost"] > 0 else 0.0,
        "fees": rt["fees"],
        "entry_rule": rt["entry_rule"],
        "exit_rule": rt["exit_rule"] if closed else None,
        "holding_hours": (end_t - rt["t0"]) * hours_per_bar,
    }


def regime_spans(res: RunResult) -> list[list]:
    p = res.prepared
    summary = run_summary(res)
    idx = summary.regime_idx
    times = summary.times
    if len(idx) == 0:
        return []
    change = np.flatnonzero(np.diff(idx)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(idx)]])
    step = timeframe_ms(p.market.timeframe)
    return [[iso_utc(int(times[a])), iso_utc(int(times[b - 1] + step)), p.regime_labels[idx[a]]]
            for a, b in zip(starts, ends)]


def run_metrics(res: RunResult) -> tuple[dict, list[dict], list[dict]]:
    """(metrics, fills, round trips) of a run: what build_results and a search's trials read."""
    m = res.prepared.market
    fills = [fill_to_dict(f, m) for f in res.fills]
    trips = round_trips(res)
    metrics = compute_metrics(m.times[res.start:res.stop], res.equity, res.exposure, fills, trips, m.timeframe,
                              res.settings.initial_cash)
    return metrics, fills, trips


def build_results(res: RunResult, run_info: dict) -> dict:
    p = res.prepared
    m = p.market
    summary = run_summary(res)
    times = summary.times
    metrics, fills, trips = run_metrics(res)
    # exposure 1 from the benchmark's first invested bar (docs/metrics.md), 0 before it
    bench_eq = summary.benchmark_equity
    bench = benchmark_metrics(times, bench_eq, summary.benchmark_exposure, m.timeframe, res.settings.initial_cash)
    iso = iso_utc_all(times)
    book = {}
    if p.rules.book is not None:  # several strategies: each fill names its strategy (sets fills[i]["strategy"])
        from engine.sim.strategies import strategy_results
        book = {"strategies": {name: {**{k: v for k, v in r.items() if k != "equity"},
                                      "equity": [[a, float(b)] for a, b in zip(iso, r["equity"])]}
                               for name, r in strategy_results(res, fills, trips, times).items()}}
    return {
        "metrics": metrics,
        "benchmark": bench,
        "trades": fills,
        "round_trips": trips,
        "equity": [[a, float(b)] for a, b in zip(iso, res.equity)],
        "benchmark_equity": [[a, float(b)] for a, b in zip(iso, bench_eq)],
        "exposure": [[a, float(b)] for a, b in zip(iso, res.exposure)],
        "regimes": regime_spans(res),
        "rule_stats": res.trace.rule_stats(),
        "universe": {"rebuilds": summary.rebuilds, "size_mean": float(summary.universe_size.mean())},
        "run": run_info,
        **book,
        # what the volume participation cap cut (a backtest's and a paper or dry_run session's fill
        # model count it; a live session's exchange has none)
        **({"participation": res.stats["participation"]} if "participation" in (res.stats or {}) else {}),
    }
