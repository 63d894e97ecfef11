"""Tables derived from a results dict: per-symbol / per-theme trade breakdowns, monthly returns."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from engine.report.metrics import trade_stats


def breakdown_by(round_trips: Sequence[dict], key: str) -> dict[str, dict[str, Any]]:
    """``{group: {n_trades, n_open, pnl, fees, win_rate, avg_return, avg_holding_hours, ...}}``.

    pnl and fees cover closed round trips only (open ones are not realised), like the metrics.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for rt in round_trips:
        groups[str(rt.get(key) or "unknown")].append(rt)
    out = {}
    for name in sorted(groups):
        rows = groups[name]
        closed = [rt for rt in rows if rt.get("exit_time") is not None]
        stats = trade_stats(rows)
        out[name] = {
            "n_trades": stats["n_trades"], "n_open": stats["n_open"],
            "pnl": float(sum(float(rt["pnl"]) for rt in closed)),
            "fees": float(sum(float(rt.get("fees") or 0.0) for rt in closed)),
            "win_rate": stats["win_rate"], "avg_return": stats["avg_return"],
            "avg_holding_hours": stats["avg_holding_hours"], "profit_factor": stats["profit_factor"],
        }
    return out


def breakdowns(round_trips: Sequence[dict]) -> dict[str, dict]:
    return {"per_symbol": breakdown_by(round_trips, "symbol"), "per_theme": breakdown_by(round_trips, "theme")}


def monthly_returns(times_ms: np.ndarray, equity: np.ndarray, initial_equity: float) -> dict[str, Any]:
    """Calendar-month returns (UTC) from month-end equity: ``{"years": [...], "grid": {year: [12 x r|None]},
    "year_total": {year: r}}``. The first month starts from ``initial_equity``."""
    times = np.asarray(times_ms, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return {"years": [], "grid": {}, "year_total": {}}
    months = times.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    change = np.flatnonzero(np.diff(months)) + 1
    last_idx = np.concatenate([change - 1, [eq.size - 1]])
    month_ids = months[last_idx]
    ends = eq[last_idx]
    starts = np.concatenate([[initial_equity], ends[:-1]])
    rets = np.where(starts > 0, ends / np.where(starts > 0, starts, 1.0) - 1.0, 0.0)
    years = sorted({int(m // 12 + 1970) for m in month_ids})
    grid: dict[int, list] = {y: [None] * 12 for y in years}
    for m, r in zip(month_ids.tolist(), rets.tolist()):
        grid[m // 12 + 1970][m % 12] = r
    year_total = {}
    for y in years:
        in_year = (month_ids // 12 + 1970) == y
        first = int(np.argmax(in_year))
        year_total[y] = float(ends[in_year][-1] / starts[first] - 1.0) if starts[first] > 0 else None
    return {"years": years, "grid": grid, "year_total": year_total}
