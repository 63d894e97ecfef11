"""A book's results per strategy: each fill attributed, each strategy's equity and metrics.

A buy belongs to the strategy whose entry rule opened it (its rule id reads ``<strategy>.<rule>``);
a sell to the strategy that holds the position (a halt's flatten included). A strategy's equity
is its share of the initial cash plus its cash flows (fills, net of fees) plus the value of its
positions at each close, so the strategies' profits add up to the book's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine.report.metrics import compute_metrics
from engine.sim.result import RunResult
from engine.sim.results import run_summary


def initial_shares(res: RunResult) -> np.ndarray:
    """Each strategy's share of the initial cash: its fixed weight, or an equal split (inverse_vol)."""
    sleeves = res.prepared.rules.book.sleeves
    if all(sl.weight is not None for sl in sleeves):
        return np.array([sl.weight for sl in sleeves], dtype=np.float64)
    return np.full(len(sleeves), 1.0 / len(sleeves))


def strategy_results(res: RunResult, fills: list[dict], trips: list[dict], times: np.ndarray) -> dict[str, Any]:
    """name -> {share, metrics, equity [[time, value]], n_fills} of every strategy of the book."""
    p = res.prepared
    book = p.rules.book
    sleeves = run_summary(res).sleeves
    owners, values = sleeves.owners, sleeves.values
    for d, k in zip(fills, owners):
        d["strategy"] = book.sleeves[k].name if k >= 0 else None
    span = res.stop - res.start
    shares = initial_shares(res)
    cash0 = res.settings.initial_cash
    out: dict[str, Any] = {}
    for k, sl in enumerate(book.sleeves):
        mine = [i for i, o in enumerate(owners) if o == k]
        flows = np.zeros(span)
        for i in mine:
            f = res.fills[i]
            sign = 1.0 if f.side == "buy" else -1.0
            flows[f.t - res.start] += -sign * f.qty * f.price - f.fee
        value = values[:, k]
        start = shares[k] * cash0
        equity = start + np.cumsum(flows) + value
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure = np.where(equity > 0, value / equity, 0.0)
        own_fills = [fills[i] for i in mine]
        own_trips = [t for t in trips if book.owner_of(t.get("entry_rule") or "") == k]
        metrics = compute_metrics(times, equity, exposure, own_fills, own_trips, p.market.timeframe, start)
        out[sl.name] = {"file": sl.file, "share": float(shares[k]), "allocation": book.allocation,
                        "n_fills": len(mine), "metrics": metrics, "equity": equity}
    return out
