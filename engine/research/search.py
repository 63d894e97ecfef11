"""A grid of backtests in one process: the market loaded once, each feature computed once per
distinct expression (engine/cycle/shared.py), no per-run config composition or report.

What ``mode=grid`` runs (and what a Hydra multirun of the same grid would, 100 jobs costing
100 config compositions, checks and reports). With ``workers`` > 1 the points are split into
contiguous chunks (neighbours share their slower-varying parameters, hence most features), a
few per worker, each run in a forked worker that inherits the loaded market and the features
every point reads (prepared once in the parent); results come back in point order and are
identical whatever the worker count.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.cycle.shared import SharedFeatures
from engine.market.data import MarketData
from engine.report.metrics import bar_returns
from engine.research.grid import apply_point
from engine.sim.results import run_metrics


@dataclass
class PointResult:
    index: int
    point: dict[str, Any]
    metrics: dict
    returns: np.ndarray  # per-bar returns (for the deflated Sharpe of the best point)


CHUNKS_PER_WORKER = 4

# set in the parent before forking: the workers read the market from here, never from disk
_STATE: dict[str, Any] = {}


def _evaluate(cfg: Mapping[str, Any], market: MarketData, shared: SharedFeatures, index: int,
              point: Mapping[str, Any], name: str) -> PointResult:
    from engine.modes.setup import backtest_settings, load_rules

    pcfg = apply_point(cfg, point, name)
    prepared = prepare(market, load_rules(pcfg), shared)
    settings = backtest_settings(pcfg, market)
    res = run_backtest(prepared, settings, trace=False)
    metrics, _, _ = run_metrics(res)
    return PointResult(index, dict(point), metrics, bar_returns(res.equity, settings.initial_cash))


def _chunk(bounds: tuple[int, int]) -> list[PointResult]:
    cfg, market, points, name = _STATE["cfg"], _STATE["market"], _STATE["points"], _STATE["name"]
    shared = _STATE["shared"]
    return [_evaluate(cfg, market, shared, i, points[i], name) for i in range(*bounds)]


def _warm(cfg: Mapping[str, Any], market: MarketData, point: Mapping[str, Any], name: str) -> SharedFeatures:
    """Shared features holding what every point reads (the market columns, the regime labels,
    the universe, the risk and execution files' features), prepared once in the parent: the
    forked workers inherit them instead of each computing them again."""
    from engine.modes.setup import load_rules

    shared = SharedFeatures(market)
    prepare(market, load_rules(apply_point(cfg, point, name)), shared)
    return shared


def evaluate_points(cfg: Mapping[str, Any], market: MarketData, points: Sequence[Mapping[str, Any]],
                    workers: int = 1, name: str = "search.grid", progress=None) -> list[PointResult]:
    """Backtest every point (a dict of dotted config keys) over the market; results in point order."""
    n = len(points)
    workers = max(1, min(int(workers), n))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        shared = SharedFeatures(market)
        out = []
        for i, p in enumerate(points):
            out.append(_evaluate(cfg, market, shared, i, p, name))
            if progress is not None:
                progress(i + 1, n)
        return out
    # more chunks than workers, handed out as workers free up: points differ in cost (a fast
    # average trades several times as often as a slow one), and one contiguous half each left a
    # worker idle while the other finished; a worker's features stay with it from chunk to chunk
    edges = np.linspace(0, n, min(n, workers * CHUNKS_PER_WORKER) + 1).round().astype(int)
    chunks = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    _STATE.update(cfg=cfg, market=market, points=list(points), name=name,
                  shared=_warm(cfg, market, points[0], name))
    parts, done = [], 0
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for part in pool.imap(_chunk, chunks):  # in chunk order
                parts.append(part)
                done += len(part)
                if progress is not None:
                    progress(done, n)
    finally:
        _STATE.clear()
    return [r for part in parts for r in part]


