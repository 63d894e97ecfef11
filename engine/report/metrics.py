"""Headline performance metrics of an equity curve and its trades.

Every definition here is written out in docs/metrics.md and in the report footer
(``METRIC_DEFINITIONS``); tests/test_metrics_*.py recompute each one independently.
Conventions: returns are fractions, ``max_drawdown`` is a negative fraction, times are
ISO-8601 UTC, a metric that is undefined for the data (no trades, flat equity) is ``None``,
never NaN or inf.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from engine import detmath
from engine.market.data import iso_utc, timeframe_ms
from engine.report.errors import ReportError

YEAR_MS = 365 * 86_400_000  # crypto trades 24/7: a year is 365 full days

# name -> (label, format, higher_is_better or None, definition). The single source for the
# report footer, the sweep's "best" marks and docs/metrics.md.
METRIC_DEFINITIONS: dict[str, tuple[str, str, bool | None, str]] = {
    "final_equity": ("Final equity", "money", True, "Equity (quote currency) at the last bar."),
    "total_return": ("Total return", "pct", True, "final_equity / initial_equity - 1."),
    "cagr": ("CAGR", "pct", True,
             "(final_equity / initial_equity) ** (1 / years) - 1, years = number of bars x bar length / 365 days."),
    "volatility": ("Volatility (ann.)", "pct", False,
                   "Sample standard deviation of per-bar returns x sqrt(bars per year)."),
    "sharpe": ("Sharpe", "num", True,
               "mean / sample std (ddof=1) of per-bar returns x sqrt(bars per year); risk-free rate 0. "
               "Per-bar returns use initial_equity as the value before the first bar."),
    "sortino": ("Sortino", "num", True,
                "mean of per-bar returns / downside deviation x sqrt(bars per year); downside deviation "
                "= sqrt(mean(min(r, 0)^2)) over all bars (target 0)."),
    "calmar": ("Calmar", "num", True, "cagr / |max_drawdown|."),
    "max_drawdown": ("Max drawdown", "pct", True,
                     "Most negative equity / running peak - 1 (initial_equity counts as a peak); a negative fraction."),
    "max_drawdown_start": ("Drawdown peak", "time", None, "Time of the peak the max drawdown fell from."),
    "max_drawdown_end": ("Drawdown trough", "time", None, "Time of the max drawdown's trough."),
    "max_drawdown_recovery": ("Recovered", "time", None,
                              "First time equity got back to that peak; empty if it never did."),
    "n_trades": ("Trades", "int", None, "Round trips closed (entry and exit both filled)."),
    "n_open": ("Open at end", "int", None, "Round trips still open at the last bar (not in trade statistics)."),
    "n_fills": ("Fills", "int", None, "Number of fills (buys and sells)."),
    "win_rate": ("Win rate", "pct", True, "Share of closed round trips with pnl > 0."),
    "profit_factor": ("Profit factor", "num", True,
                      "Sum of winning pnl / |sum of losing pnl| over closed round trips; empty when there is no loss."),
    "expectancy": ("Expectancy", "money", True, "Mean pnl (quote currency, after fees) per closed round trip."),
    "avg_return": ("Avg trade return", "pct", True, "Mean return of closed round trips."),
    "best_trade": ("Best trade", "pct", None, "Highest return of a closed round trip."),
    "worst_trade": ("Worst trade", "pct", None, "Lowest return of a closed round trip."),
    "avg_holding_hours": ("Avg holding", "hours", None, "Mean holding_hours of closed round trips."),
    "exposure": ("Exposure", "pct", None, "Mean over bars of the fraction of equity invested."),
    "turnover": ("Turnover (ann.)", "num", False,
                 "Traded notional (buys + sells) / mean equity / years: annualised, 2.0 = the book bought and sold once a year."),
    "turnover_total": ("Turnover (total)", "num", False, "Traded notional / mean equity over the whole run."),
    "fees_paid": ("Fees paid", "money", False, "Sum of fill fees (quote currency)."),
    "slippage_cost": ("Slippage cost", "money", False,
                      "Sum of each fill's slippage: quote-currency cost of the fill price versus the mid."),
}

# The metrics a sweep table and the report headline show, in order.
HEADLINE = ("final_equity", "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
            "win_rate", "profit_factor", "expectancy", "n_trades", "avg_holding_hours", "exposure",
            "turnover", "fees_paid", "slippage_cost")


def bars_per_year(timeframe: str) -> float:
    return YEAR_MS / timeframe_ms(timeframe)


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def equity_path(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """initial_equity followed by the equity series: the values per-bar returns come from."""
    return np.concatenate([[float(initial_equity)], np.asarray(equity, dtype=np.float64)])


def _ratio_minus_one(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den - 1 where den > 0, else 0."""
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return np.where(den > 0, out - 1.0, 0.0)


def bar_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """(T,) per-bar simple returns; a bar starting from zero equity has return 0."""
    path = equity_path(equity, initial_equity)
    return _ratio_minus_one(path[1:], path[:-1])


def drawdown(equity: np.ndarray, initial_equity: float | None = None) -> np.ndarray:
    """(T,) equity / running peak - 1 (<= 0). ``initial_equity``, if given, counts as an earlier peak."""
    eq = np.asarray(equity, dtype=np.float64)
    path = eq if initial_equity is None else equity_path(eq, initial_equity)
    out = _ratio_minus_one(path, np.maximum.accumulate(path))
    return out if initial_equity is None else out[1:]


def _drawdown_episode(times: np.ndarray, equity: np.ndarray, initial_equity: float) -> dict[str, Any]:
    path = equity_path(equity, initial_equity)
    peak = np.maximum.accumulate(path)
    dd = drawdown(path)
    trough = int(np.argmin(dd))
    if dd[trough] >= 0.0:
        return {"max_drawdown": 0.0, "max_drawdown_start": None, "max_drawdown_end": None,
                "max_drawdown_recovery": None}
    # path index i >= 1 is equity[i - 1] at times[i - 1]; index 0 (before the first bar) maps to times[0]
    path_time = lambda i: iso_utc(int(times[max(i - 1, 0)]))  # noqa: E731
    peak_value = peak[trough]
    at_peak = np.flatnonzero(path[: trough + 1] >= peak_value)
    start = int(at_peak[-1])
    after = np.flatnonzero(path[trough + 1:] >= peak_value)
    recovery = path_time(trough + 1 + int(after[0])) if after.size else None
    return {"max_drawdown": float(dd[trough]), "max_drawdown_start": path_time(start),
            "max_drawdown_end": path_time(trough), "max_drawdown_recovery": recovery}


def _column(rows: Sequence[dict], key: str, where: str, default: float | None = None) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        v = row.get(key, default)
        if v is None:
            if default is None:
                raise ReportError(f"{where}[{i}] has no {key!r} (found {sorted(row)}); expected a number")
            v = default
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ReportError(f"{where}[{i}].{key} is {v!r}; expected a number") from None
    return out


def trade_stats(round_trips: Sequence[dict]) -> dict[str, Any]:
    """Statistics over *closed* round trips (those with an ``exit_time``)."""
    closed = [rt for rt in round_trips if rt.get("exit_time") is not None]
    n_open = len(round_trips) - len(closed)
    out: dict[str, Any] = {"n_trades": len(closed), "n_open": n_open, "win_rate": None, "profit_factor": None,
                           "expectancy": None, "avg_return": None, "best_trade": None, "worst_trade": None,
                           "avg_holding_hours": None}
    if not closed:
        return out
    pnl = _column(closed, "pnl", "round_trips")
    ret = _column(closed, "return", "round_trips")
    hold = _column(closed, "holding_hours", "round_trips")
    wins, losses = pnl[pnl > 0].sum(), pnl[pnl < 0].sum()
    out.update(
        win_rate=float((pnl > 0).mean()),
        profit_factor=_finite(wins / -losses) if losses < 0 else None,
        expectancy=float(pnl.mean()),
        avg_return=float(ret.mean()),
        best_trade=float(ret.max()),
        worst_trade=float(ret.min()),
        avg_holding_hours=float(hold.mean()),
    )
    return out


def fill_costs(fills: Sequence[dict]) -> dict[str, Any]:
    if not fills:
        return {"n_fills": 0, "fees_paid": 0.0, "slippage_cost": 0.0, "notional": 0.0}
    fee = _column(fills, "fee", "trades", default=0.0)
    slip = _column(fills, "slippage", "trades", default=0.0)
    if all("notional" in f and f["notional"] is not None for f in fills):
        notional = np.abs(_column(fills, "notional", "trades"))
    else:
        notional = np.abs(_column(fills, "qty", "trades") * _column(fills, "price", "trades"))
    return {"n_fills": len(fills), "fees_paid": float(fee.sum()), "slippage_cost": float(slip.sum()),
            "notional": float(notional.sum())}


def compute_metrics(times_ms: np.ndarray, equity: np.ndarray, exposure: np.ndarray | None,
                    fills: Sequence[dict], round_trips: Sequence[dict], timeframe: str,
                    initial_equity: float) -> dict[str, Any]:
    """Every metric in METRIC_DEFINITIONS for one equity curve, as JSON-safe values."""
    times = np.asarray(times_ms, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if eq.ndim != 1 or times.shape != eq.shape:
        raise ReportError(f"metrics: equity has shape {eq.shape} and times {times.shape}; expected equal (T,) arrays")
    if eq.size == 0:
        raise ReportError("metrics: the equity series is empty; expected at least one bar")
    if not np.isfinite(eq).all():
        bad = int(np.flatnonzero(~np.isfinite(eq))[0])
        raise ReportError(f"metrics: equity[{bad}] at {iso_utc(int(times[bad]))} is {eq[bad]}; expected a finite number")
    if not (initial_equity and initial_equity > 0):
        raise ReportError(f"metrics: initial_equity is {initial_equity!r}; expected a positive number")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # extremes end up as None
        return _compute(times, eq, exposure, fills, round_trips, timeframe, float(initial_equity))


def _compute(times: np.ndarray, eq: np.ndarray, exposure: np.ndarray | None, fills: Sequence[dict],
             round_trips: Sequence[dict], timeframe: str, initial_equity: float) -> dict[str, Any]:
    bpy = bars_per_year(timeframe)
    years = eq.size / bpy
    r = bar_returns(eq, initial_equity)
    final = float(eq[-1])
    total_return = final / initial_equity - 1.0
    # exp(log(ratio) / years) in engine.detmath: the same bits on every CPU (math.pow may not be)
    cagr = detmath.exp(detmath.log(final / initial_equity) / years) - 1.0 if final > 0 else -1.0
    if not math.isfinite(cagr):
        cagr = None
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    mean = float(r.mean())
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    dd = _drawdown_episode(times, eq, initial_equity)
    exp = np.zeros_like(eq) if exposure is None else np.asarray(exposure, dtype=np.float64)
    if exp.shape != eq.shape:
        raise ReportError(f"metrics: exposure has shape {exp.shape}; expected {eq.shape} like equity")
    costs = fill_costs(fills)
    mean_equity = float(eq.mean())
    turnover_total = costs["notional"] / mean_equity if mean_equity > 0 else None
    out: dict[str, Any] = {
        "initial_equity": float(initial_equity),
        "final_equity": final,
        "total_return": total_return,
        "cagr": _finite(cagr),
        "volatility": std * math.sqrt(bpy) if r.size > 1 else None,
        "sharpe": _finite(mean / std * math.sqrt(bpy)) if std > 1e-15 else None,
        "sortino": _finite(mean / downside * math.sqrt(bpy)) if downside > 1e-15 else None,
        "calmar": _finite(cagr / -dd["max_drawdown"]) if cagr is not None and dd["max_drawdown"] < 0 else None,
        **dd,
        **trade_stats(round_trips),
        "n_fills": costs["n_fills"],
        "exposure": float(np.nan_to_num(exp, nan=0.0).mean()),
        "turnover": _finite(turnover_total / years) if turnover_total is not None else None,
        "turnover_total": _finite(turnover_total),
        "fees_paid": costs["fees_paid"],
        "slippage_cost": costs["slippage_cost"],
        "n_bars": int(eq.size),
        "years": years,
        "timeframe": timeframe,
    }
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in out.items()}


def buy_and_hold(times_ms: np.ndarray, close: np.ndarray, initial_equity: float) -> np.ndarray:
    """Equal-weight, never-rebalanced buy-and-hold of the market, fees ignored.

    At the first bar where any symbol has a close, ``initial_equity`` is split equally over
    the symbols that have a close at that bar and bought at that close. Symbols listed later
    are not bought. A missing bar (gap, halt, delisting) values a holding at its last known
    close. Before the first bar with data the benchmark holds cash.
    """
    px = np.asarray(close, dtype=np.float64)
    if px.ndim != 2 or px.shape[0] != len(times_ms):
        raise ReportError(f"buy_and_hold: close has shape {px.shape}; expected (T={len(times_ms)}, N)")
    return BuyAndHold(initial_equity).step(px)[0]


_BLOCK_CELLS = 1 << 19  # symbol-bars per block of BuyAndHold.step (4 MiB a float64 temporary)


class BuyAndHold:
    """:func:`buy_and_hold` fed in consecutive row chunks of the close panel (a chunked
    backtest); each chunk's rows are bit for bit those of the whole-array result, which is the
    one-chunk case. Carries the members, their quantities and last known closes."""

    def __init__(self, initial_equity: float):
        self.initial = float(initial_equity)
        self.members: np.ndarray | None = None  # symbols bought at the first bar with data
        self.qty: np.ndarray | None = None
        self.last: np.ndarray | None = None  # (M,) each member's last known close

    def step(self, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(equity, exposure) rows of the chunk ``px`` (R, N): exposure 1.0 from the first
        invested bar (:func:`buy_and_hold_exposure`)."""
        rows = px.shape[0]
        block = max(256, _BLOCK_CELLS // max(px.shape[1], 1))
        if rows > block:
            # in row blocks, each one chunk of the chunked case (so the same bits): temporaries of
            # a few MB that stay in cache, not a dozen (T, N) arrays of fresh memory for a month
            parts = [self.step(px[a:a + block]) for a in range(0, rows, block)]
            return np.concatenate([e for e, _ in parts]), np.concatenate([x for _, x in parts])
        out = np.full(rows, self.initial)
        exposure = np.zeros(rows)
        valid = np.isfinite(px) & (px > 0)
        t0 = 0
        if self.members is None:
            rows_with_data = valid.any(axis=1)
            if not rows_with_data.any():
                return out, exposure
            t0 = int(np.argmax(rows_with_data))
            self.members = np.flatnonzero(valid[t0])
            self.qty = (self.initial / self.members.size) / px[t0, self.members]
            self.last = px[t0, self.members]
        members = self.members
        ok = valid[t0:, members]
        # each member's last known close: the carried one (row 0 of the stack), then the chunk's
        stack = np.concatenate([self.last[None, :], px[t0:, members]])
        pos = np.arange(rows - t0 + 1)[:, None]
        last_row = np.maximum.accumulate(np.where(np.concatenate([np.ones((1, members.size), bool), ok]), pos, 0),
                                         axis=0)[1:]
        filled = stack[last_row, np.arange(members.size)]
        # each row summed left to right (accumulate is sequential): the same bits on every CPU
        # and for every chunking. sum(axis=1) is not: numpy picks pairwise or sequential by the
        # number of rows, so a one-row chunk summed differently from the whole panel.
        value = filled * self.qty
        if value.shape[0]:
            out[t0:] = np.add.accumulate(value, axis=1)[:, -1]
        exposure[t0:] = 1.0
        # a copy: a row of ``filled`` would keep the chunk's whole panel alive into the next chunk
        self.last = filled[-1].copy() if filled.shape[0] else self.last
        return out, exposure


def buy_and_hold_exposure(close: np.ndarray) -> np.ndarray:
    """(T,) 1.0 from the benchmark's first invested bar, 0.0 before."""
    has = (np.isfinite(close) & (close > 0)).any(axis=1)
    return np.maximum.accumulate(has).astype(np.float64)


def benchmark(times_ms: np.ndarray, close: np.ndarray, timeframe: str,
              initial_equity: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Buy-and-hold equity and its metrics (trade statistics empty): ``results['benchmark']``."""
    eq = buy_and_hold(times_ms, close, initial_equity)
    return eq, benchmark_metrics(times_ms, eq, buy_and_hold_exposure(np.asarray(close, dtype=np.float64)),
                                 timeframe, initial_equity)


def benchmark_metrics(times_ms: np.ndarray, eq: np.ndarray, exposure: np.ndarray, timeframe: str,
                      initial_equity: float) -> dict[str, Any]:
    return compute_metrics(times_ms, eq, exposure, [], [], timeframe, initial_equity)
