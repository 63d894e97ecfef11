"""Walk-forward: on each fold, search the grid on the train window only, then trade the chosen
parameters on the test window after it; the test windows' equity, stitched, is the result.

The search (``walkforward.search``) is ``grid`` (every point of ``walkforward.grid`` on every
train window) or ``optuna`` (``walkforward.n_trials`` asks of a seeded TPE study per fold over
the same space: engine/research/optuna_fold.py). Each point evaluated is prepared once over the
whole market (features are causal: row t reads bars <= t only, so a test window's first bars
see the train data before them, as a live run would see its history) and then backtested on every window it is needed for; each window
starts from the configured cash with no position. Stitching chains the test windows: each
fold's equity is scaled by where the previous one ended, i.e. positions are marked to market
at a fold's end and the next fold starts from that equity. Everything is seeded from the
config (``seed``), so the same command gives the same folds, choices and figures.

The overfitting statistics (engine/research/overfit.py, docs/metrics.md) read every distinct
point evaluated (on any fold), each run over the whole walk-forward span (first train bar to
last test bar): the deflated Sharpe ratio's number of trials is their count (a point an Optuna
study asked twice counts once) and PBO ranks them.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from engine.backtest.diagnostics import Diagnostic
from engine.backtest.engine import run_backtest
from engine.cycle.prepare import Prepared, prepare
from engine.cycle.shared import SharedFeatures
from engine.errors import UserError
from engine.market.data import MarketData, iso_utc, timeframe_ms
from engine.report.metrics import bar_returns, benchmark, compute_metrics
from engine.research.folds import Fold, FoldPlan, length_bars, make_folds
from engine.research.grid import apply_point, flatten_grid, grid_points, search_axes
from engine.research.lookback import Lookback, feature_lookback
from engine.research.optuna_fold import fold_seed, optuna_fold, point_key
from engine.research.overfit import (DeflatedSharpe, PBOResult, deflated_sharpe, moments, pbo_cscv,
                                     trial_sharpe_variance)
from engine.research.stability import parameter_stability
from engine.sim.results import run_metrics
from engine.sim.settings import SimSettings

log = logging.getLogger(__name__)

SEARCHES = ("grid", "optuna")
# keys a grid may not search: they move the folds or the data every point must share
_FIXED = ("data", "seed", "backtest.start", "backtest.end", "mode", "walkforward")


@dataclass(frozen=True)
class WalkForwardSpec:
    scheme: str
    train: Any
    test: Any
    purge: Any
    objective: str
    direction: str
    min_trades: int
    pbo_blocks: int
    axes: dict[str, list]
    oos_sharpe_fraction: float
    pbo_warn: float
    search: str = "grid"
    n_trials: int | None = None  # asks per fold (search: optuna)

    @property
    def space_points(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    @classmethod
    def from_config(cls, wf: Mapping[str, Any]) -> "WalkForwardSpec":
        if not wf:
            raise UserError("mode=walkforward needs the walkforward config group (conf/walkforward/default.yaml); "
                            "found none")
        search = str(wf.get("search", "grid"))
        if search not in SEARCHES:
            raise UserError(f"walkforward.search is {search!r}; expected one of {', '.join(SEARCHES)}")
        n_trials = None
        if search == "optuna":
            # the range and default of n_trials are the schema's and conf/walkforward/default.yaml's
            from engine.config.schema import WALKFORWARD

            least = WALKFORWARD["n_trials"]["min"]
            n_trials = wf.get("n_trials")
            if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < least:
                raise UserError(f"walkforward.n_trials is {n_trials!r} with walkforward.search=optuna; expected "
                                f"a whole number of trials per fold, at least {least}")
            if not flatten_grid(wf.get("grid") or {}):
                raise UserError("walkforward.search is optuna but walkforward.grid has no key to search; "
                                "expected at least one key with values to try, "
                                "e.g. walkforward.grid.strategy.params.fast=[12,24]")
        axes = search_axes(wf.get("grid") or {}, "walkforward.grid", _FIXED,
                           "the data, the seed and the window of its fold")
        blocks = int(wf.get("pbo_blocks", 16))
        if blocks < 2 or blocks % 2:
            raise UserError(f"walkforward.pbo_blocks is {blocks}; expected an even number >= 2")
        warn = wf.get("warn") or {}
        return cls(str(wf.get("scheme", "rolling")), wf.get("train"), wf.get("test"), wf.get("purge", 0),
                   str(wf.get("objective", "sharpe")), str(wf.get("direction", "maximize")),
                   int(wf.get("min_trades", 1)), blocks, axes,
                   float(warn.get("oos_sharpe_fraction", 0.5)), float(warn.get("pbo", 0.5)), search, n_trials)


@dataclass
class Trial:
    """One point of the space, prepared once for every window (index: order of first use)."""
    index: int
    point: dict[str, Any]
    prepared: Prepared
    settings: SimSettings
    lookback: Lookback


@dataclass
class WindowRun:
    metrics: dict
    fills: list[dict]
    trips: list[dict]
    equity: np.ndarray
    exposure: np.ndarray


@dataclass
class FoldResult:
    fold: Fold
    chosen: int  # index (in WalkForwardResult.trials) of the chosen point
    evaluated: list[int]  # the point of each trial of the fold's search, in order (grid: every point once)
    scores: list[Any]  # the objective metric of each of those on the train window (None: undefined)
    train: WindowRun
    test: WindowRun
    warnings: list[Diagnostic] = field(default_factory=list)
    seed: int | None = None  # the Optuna sampler's seed (search: optuna)

    @property
    def n_distinct(self) -> int:
        return len(set(self.evaluated))


@dataclass
class WalkForwardResult:
    spec: WalkForwardSpec
    plan: FoldPlan
    trials: list[Trial]  # every distinct point evaluated on some fold
    folds: list[FoldResult]
    times: np.ndarray  # the out-of-sample span's bar times
    equity: np.ndarray  # stitched out-of-sample equity
    exposure: np.ndarray
    metrics: dict  # of the stitched equity (all test fills and round trips)
    benchmark_equity: np.ndarray
    benchmark: dict
    in_sample: dict  # mean over folds of the chosen point's train metrics (objective and sharpe)
    dsr: DeflatedSharpe
    pbo: PBOResult | None
    stability: dict
    span_sharpes: list[float | None]  # per trial, per bar, over the whole span
    warnings: list[Diagnostic]


def _window(trial: Trial, window: tuple[int, int]) -> WindowRun:
    res = run_backtest(trial.prepared, dataclasses.replace(trial.settings, start=window[0], stop=window[1]))
    metrics, fills, trips = run_metrics(res)
    return WindowRun(metrics, fills, trips, res.equity, res.exposure)


def score(metrics: Mapping[str, Any], objective: str, direction: str) -> float | None:
    if objective not in metrics:
        raise UserError(f"walkforward.objective is {objective!r}; expected one of the metrics in results.json: "
                        f"{', '.join(sorted(metrics))}")
    v = metrics[objective]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(float(v)):
        return None
    return float(v) if direction == "maximize" else -float(v)


def choose(scores: Sequence[float | None]) -> int | None:
    """The best defined score's index; ties go to the earliest (grid order, or ask order)."""
    best = None
    for i, s in enumerate(scores):
        if s is not None and (best is None or s > scores[best]):
            best = i
    return best


def stitch(curves: Sequence[np.ndarray], initial: float) -> np.ndarray:
    """Chain equity curves that each start from ``initial``: curve k is scaled by the equity the
    chain stood at when curve k-1 ended."""
    out, level = [], float(initial)
    for c in curves:
        scaled = np.asarray(c, dtype=np.float64) * (level / initial)
        out.append(scaled)
        level = float(scaled[-1]) if scaled.size else level
    return np.concatenate(out) if out else np.zeros(0)


class TrialPool:
    """The points a walk-forward evaluates, each prepared once over the whole market on its
    first use (``trials`` in that order) and then backtested on every window it is needed for."""

    def __init__(self, cfg: Mapping[str, Any], market: MarketData):
        self.cfg, self.market = cfg, market
        self.shared = SharedFeatures(market)  # sma(close, 48) once for every point that reads it
        self.trials: list[Trial] = []
        self._by_key: dict[str, int] = {}

    def get(self, point: Mapping[str, Any]) -> tuple[Trial, bool]:
        """The point's trial and whether it is new."""
        from engine.modes.setup import backtest_settings, load_rules

        key = point_key(point)
        if key in self._by_key:
            return self.trials[self._by_key[key]], False
        pcfg = apply_point(self.cfg, point)
        prepared = prepare(self.market, load_rules(pcfg), self.shared)
        trial = Trial(len(self.trials), dict(point), prepared, backtest_settings(pcfg, self.market),
                      feature_lookback(sorted(prepared.store.used)))
        self._by_key[key] = trial.index
        self.trials.append(trial)
        return trial, True


def fold_plan(cfg: Mapping[str, Any], market: MarketData, spec: WalkForwardSpec) -> FoldPlan:
    from engine.modes.setup import window

    bar_ms = timeframe_ms(market.timeframe)
    train = length_bars(spec.train, bar_ms, "walkforward.train")
    test = length_bars(spec.test, bar_ms, "walkforward.test", minimum=2)
    purge = length_bars(spec.purge, bar_ms, "walkforward.purge", minimum=0)
    start, stop = window(market, cfg.get("backtest") or {})
    plan = make_folds(start, stop, train, test, purge, spec.scheme)
    if not plan.folds:
        need = train + purge + test
        raise UserError(
            f"walkforward: train {spec.train!r} ({train} bars) + purge {spec.purge!r} ({purge}) + test {spec.test!r} "
            f"({test}) needs {need} bars for one fold; the backtest window {iso_utc(int(market.times[start]))} .. "
            f"{iso_utc(int(market.times[stop - 1]))} holds {stop - start}; expected shorter walkforward.train/test "
            f"or a longer backtest.start .. backtest.end")
    return plan


def check_lookback(plan: FoldPlan, trials: Sequence[Trial], spec: WalkForwardSpec) -> None:
    slow = max(trials, key=lambda t: t.lookback.bars)
    if plan.test_bars < slow.lookback.bars:
        params = ", ".join(f"{k}={v}" for k, v in slow.point.items())
        raise UserError(
            f"walkforward.test is {spec.test!r} ({plan.test_bars} bars), shorter than the slowest rule's look-back: "
            f"{slow.lookback.feature} reads {slow.lookback.bars} bars (grid point {params}); expected a test window "
            f"of at least {slow.lookback.bars} bars, or a grid without that window")


def _fold_warnings(fold: Fold, train: WindowRun, spec: WalkForwardSpec, fallback: bool,
                   word: str = "grid point") -> list[Diagnostic]:
    out = []
    where = f"fold {fold.index} (train {fold.train[1] - fold.train[0]} bars)"
    if fallback:
        out.append(Diagnostic("train_objective_undefined",
                              f"{where}: no {word} has a defined {spec.objective} on the train window "
                              f"(no trade, or a flat equity curve); the test window trades the first {word}"))
    n = train.metrics.get("n_trades") or 0
    if n < spec.min_trades:
        out.append(Diagnostic("train_no_trade",
                              f"{where}: the chosen {word} closed {n} trade(s) on the train window, fewer than "
                              f"walkforward.min_trades={spec.min_trades}; its choice rests on no evidence"))
    return out


class _Counter:
    """Progress over the walk-forward's backtests."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


class _GridSearch:
    """Every grid point on every train window; all prepared up front (the slowest look-back is
    checked once, before any backtest)."""
    word = "grid point"

    def __init__(self, spec: WalkForwardSpec, pool: TrialPool, plan: FoldPlan, seed: int):
        for point in grid_points(spec.axes):
            pool.get(point)
        check_lookback(plan, pool.trials, spec)
        self.pool, self.per_fold = pool, len(pool.trials)
        log.info("walkforward: %d folds (%s; train %d, purge %d, test %d bars) x %d grid points", len(plan.folds),
                 plan.scheme, plan.train_bars, plan.purge_bars, plan.test_bars, self.per_fold)

    def fold(self, fold: Fold, train_run) -> tuple[list[int], int | None]:
        order = list(range(len(self.pool.trials)))
        for i in order:
            train_run(self.pool.trials[i])
        return order, None


class _OptunaSearch:
    """``n_trials`` asks of a seeded study per fold (engine/research/optuna_fold.py); a point is
    prepared, and its look-back checked, when first asked."""
    word = "point tried"

    def __init__(self, spec: WalkForwardSpec, pool: TrialPool, plan: FoldPlan, seed: int):
        self.spec, self.pool, self.plan, self.seed = spec, pool, plan, seed
        self.per_fold = min(int(spec.n_trials or 0), spec.space_points)  # distinct train runs, at most
        log.info("walkforward: %d folds (%s; train %d, purge %d, test %d bars) x %d optuna trials over %d points",
                 len(plan.folds), plan.scheme, plan.train_bars, plan.purge_bars, plan.test_bars, spec.n_trials,
                 spec.space_points)

    def fold(self, fold: Fold, train_run) -> tuple[list[int], int | None]:
        spec, pool = self.spec, self.pool

        def evaluate(point: dict[str, Any]) -> float | None:
            trial, new = pool.get(point)
            if new:
                check_lookback(self.plan, [trial], spec)
            return score(train_run(trial).metrics, spec.objective, spec.direction)

        fseed = fold_seed(self.seed, fold.index)
        asked = optuna_fold(spec.axes, int(spec.n_trials or 0), fseed, evaluate)
        return [pool.get(p)[0].index for p, _ in asked], fseed  # a repeated ask is the same trial again


_SEARCH_KINDS = {"grid": _GridSearch, "optuna": _OptunaSearch}


def run_walkforward(cfg: Mapping[str, Any], market: MarketData, progress=None) -> WalkForwardResult:
    spec = WalkForwardSpec.from_config(cfg.get("walkforward") or {})
    plan = fold_plan(cfg, market, spec)
    pool = TrialPool(cfg, market)
    search = _SEARCH_KINDS[spec.search](spec, pool, plan, int(cfg.get("seed", 0)))
    n_folds = len(plan.folds)
    # train runs, test runs, then one span run per distinct point (at most the space)
    count = _Counter(progress, n_folds * (search.per_fold + 1) + min(spec.space_points, n_folds * search.per_fold))
    folds: list[FoldResult] = []
    word = search.word
    for fold in plan.folds:
        train_runs: dict[int, WindowRun] = {}

        def train_run(trial: Trial) -> WindowRun:  # on this fold's train window only, once per point
            if trial.index not in train_runs:
                train_runs[trial.index] = _window(trial, fold.train)
                count.step()
            return train_runs[trial.index]

        evaluated, fseed = search.fold(fold, train_run)
        runs = [train_runs[i] for i in evaluated]
        scores = [score(r.metrics, spec.objective, spec.direction) for r in runs]
        best = choose(scores)
        pos = 0 if best is None else best
        chosen = evaluated[pos]
        test = _window(pool.trials[chosen], fold.test)
        count.step()
        warned = _fold_warnings(fold, runs[pos], spec, best is None, word)
        if not test.fills:
            warned.append(Diagnostic("test_no_trade", f"fold {fold.index}: the chosen {word} made no trade in "
                                                      f"the test window; its out-of-sample equity is flat"))
        raw = [r.metrics.get(spec.objective) for r in runs]
        folds.append(FoldResult(fold, chosen, evaluated, raw, runs[pos], test, warned, fseed))
    trials = pool.trials
    initial = trials[0].settings.initial_cash
    # the out-of-sample span: contiguous test windows
    a, b = plan.folds[0].test[0], plan.folds[-1].test[1]
    times = market.times[a:b]
    equity = stitch([f.test.equity for f in folds], initial)
    exposure = np.concatenate([f.test.exposure for f in folds])
    fills = [x for f in folds for x in f.test.fills]
    trips = [x for f in folds for x in f.test.trips]
    metrics = compute_metrics(times, equity, exposure, fills, trips, market.timeframe, initial)
    bench_eq, bench = benchmark(times, market.close[a:b], market.timeframe, initial)
    # every distinct point evaluated over the whole span, for PBO and the variance of the trials' Sharpe ratios
    span = (plan.folds[0].train[0], b)
    span_returns = []
    for t in trials:
        r = _window(t, span)
        count.step()
        span_returns.append(bar_returns(r.equity, initial))
    span_sharpes = [moments(r).sharpe for r in span_returns]
    oos_returns = bar_returns(equity, initial)
    dsr = deflated_sharpe(moments(oos_returns), len(trials), trial_sharpe_variance(span_sharpes))
    warnings: list[Diagnostic] = [w for f in folds for w in f.warnings]
    pbo = None
    if len(trials) < 2:
        what = "the grid has one point" if spec.search == "grid" else "the search tried one distinct point"
        warnings.append(Diagnostic("pbo_needs_two_points",
                                   f"{what}: there is no selection to overfit, PBO is not computed"))
    else:
        try:
            pbo = pbo_cscv(np.stack(span_returns, axis=1), spec.pbo_blocks)
        except ValueError as exc:
            warnings.append(Diagnostic("pbo_not_computed", f"probability of backtest overfitting not computed: {exc}"))
    is_sharpes = [f.train.metrics.get("sharpe") for f in folds]
    defined = [s for s in is_sharpes if s is not None]
    in_sample = {"sharpe": (sum(defined) / len(defined)) if defined else None}
    oos_sharpe = metrics.get("sharpe")
    if in_sample["sharpe"] is not None and in_sample["sharpe"] > 0 and (
            oos_sharpe is None or oos_sharpe < spec.oos_sharpe_fraction * in_sample["sharpe"]):
        warnings.append(Diagnostic(
            "oos_sharpe_drop",
            f"the out-of-sample Sharpe ({_num(oos_sharpe)}) is below {spec.oos_sharpe_fraction:g} x the mean "
            f"in-sample Sharpe of the chosen points ({_num(in_sample['sharpe'])}): the search's winners did not hold up"))
    if pbo is not None and pbo.pbo is not None and pbo.pbo > spec.pbo_warn:
        warnings.append(Diagnostic(
            "pbo_high", f"the probability of backtest overfitting is {pbo.pbo:.2f}, above {spec.pbo_warn:g}: "
                        f"the best {word} in sample tends to be no better than the median out of sample"))
    if plan.unused_bars:
        warnings.append(Diagnostic("unused_bars", f"the last {plan.unused_bars} bars of the window fill no whole "
                                                  f"test window and are not traded"))
    stability = parameter_stability([trials[f.chosen].point for f in folds], spec.axes)
    return WalkForwardResult(spec, plan, trials, folds, times, equity, exposure, metrics, bench_eq, bench,
                             in_sample, dsr, pbo, stability, span_sharpes, warnings)


def _num(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.2f}"
