"""results dict -> the context the backtest report template renders (charts, tables, identity)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from markupsafe import Markup

from engine import yamlfast
from engine.report.breakdown import breakdowns, monthly_returns
from engine.report.charts import PALETTE, Band, Series, line_chart
from engine.report.errors import ReportError
from engine.report.metrics import METRIC_DEFINITIONS, drawdown
from engine.report.options import ReportOptions
from engine.config.secrets import redact, redact_override
from engine.report.timeutil import iso_to_ms

REQUIRED = ("metrics", "equity", "run")
# the columns of a book's per-strategy table
STRATEGY_METRICS = ("final_equity", "total_return", "sharpe", "max_drawdown", "n_trades", "win_rate", "fees_paid")


def check_results(results: Mapping[str, Any]) -> None:
    if not isinstance(results, Mapping):
        raise ReportError(f"results is a {type(results).__name__}; expected a dict")
    missing = [k for k in REQUIRED if k not in results]
    if missing:
        raise ReportError(f"results has no {', '.join(repr(k) for k in missing)} (found {sorted(results)}); "
                          f"expected at least {', '.join(REQUIRED)}")
    for key in ("equity", "benchmark_equity", "exposure"):
        rows = results.get(key) or []
        if not isinstance(rows, list) or any(not isinstance(r, (list, tuple)) or len(r) != 2 for r in rows[:1]):
            raise ReportError(f"results.{key} must be a list of [iso_time, value] pairs; found {str(rows)[:80]}")
    if not results["equity"]:
        raise ReportError("results.equity is empty; expected one [iso_time, equity] pair per bar")


def series_arrays(rows: list, key: str) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    times = iso_to_ms((r[0] for r in rows), where=f"results.{key}")
    values = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    return times, values


def build_context(results: Mapping[str, Any], timing: Mapping[str, Any] | None = None,
                  options: ReportOptions = ReportOptions()) -> dict[str, Any]:
    check_results(results)
    metrics = results["metrics"]
    bench = results.get("benchmark") or {}
    run = dict(results.get("run") or {})
    t_eq, eq = series_arrays(results["equity"], "equity")
    t_b, b_eq = series_arrays(results.get("benchmark_equity") or [], "benchmark_equity")
    t_x, expo = series_arrays(results.get("exposure") or [], "exposure")
    initial = float(metrics.get("initial_equity") or (eq[0] if eq.size else 1.0))
    regimes = results.get("regimes") or []
    bands = []
    if regimes:
        r_start = iso_to_ms((r[0] for r in regimes), where="results.regimes")
        r_end = iso_to_ms((r[1] for r in regimes), where="results.regimes")
        bands = [Band(int(a), int(z), str(r[2])) for a, z, r in zip(r_start, r_end, regimes)]
    pts = options.max_chart_points
    strategies = results.get("strategies") or {}  # a book: several strategies in one account
    eq_series = [Series("Book" if strategies else "Strategy", t_eq, eq, PALETTE[0], width=1.8)]
    if b_eq.size:
        eq_series.append(Series("Buy & hold", t_b, b_eq, PALETTE[1]))
    for k, (name, st) in enumerate(strategies.items()):
        t_s, s_eq = series_arrays(st.get("equity") or [], f"strategies.{name}.equity")
        eq_series.append(Series(f"{name} ({st.get('share', 0):.0%})", t_s, s_eq, PALETTE[4 + k % 4]))
    dd_series = [Series("Strategy drawdown", t_eq, drawdown(eq, initial), PALETTE[2], area=True)]
    if b_eq.size:
        dd_series.append(Series("Buy & hold drawdown", t_b, drawdown(b_eq, initial), PALETTE[1]))
    charts = {
        "equity": Markup(line_chart(eq_series, title="Equity vs buy & hold, regimes behind", bands=bands,
                                    height=300, max_points=pts, chart_id="chart-equity")),
        "drawdown": Markup(line_chart(dd_series, title="Drawdown (underwater)", y_kind="pct", y_ceiling=0.0,
                                      max_points=pts, height=200, chart_id="chart-drawdown")),
        "exposure": Markup(line_chart([Series("Exposure", t_x, expo, PALETTE[3], area=True)],
                                      title="Exposure (fraction of equity invested)", y_kind="pct",
                                      y_floor=0.0, y_ceiling=1.0 if expo.size and np.nanmax(expo) > 0.5 else None,
                                      max_points=pts, height=170, chart_id="chart-exposure"))
        if expo.size else Markup('<p class="empty">no exposure series</p>'),
    }
    round_trips = sorted(results.get("round_trips") or [],
                         key=lambda rt: (rt.get("entry_time") or "", rt.get("symbol") or ""))
    shown = round_trips[: options.max_table_rows]
    bd = results.get("breakdown") or breakdowns(round_trips)
    rule_rows = []
    for rule, st in sorted((results.get("rule_stats") or {}).items()):
        passed, blocked, clipped = (int(st.get(k) or 0) for k in ("passed", "blocked", "clipped"))
        total = passed + blocked
        rule_rows.append({"rule": rule, "passed": passed, "blocked": blocked, "clipped": clipped,
                          "block_rate": blocked / total if total else None})
    config = redact(run.pop("config", {}) or {})
    overrides = [redact_override(str(o)) for o in run.pop("overrides", []) or []]
    metric_rows = [{"key": k, "label": label, "kind": kind, "definition": definition,
                    "value": metrics.get(k), "bench": bench.get(k) if bench else None}
                   for k, (label, kind, _better, definition) in METRIC_DEFINITIONS.items()]
    headline = [r for r in metric_rows if r["key"] in ("final_equity", "total_return", "cagr", "sharpe",
                                                         "max_drawdown", "n_trades", "win_rate", "fees_paid")]
    return {
        "title": f"rulebook backtest: {run.get('strategy') or 'strategy'}",
        "run": run,
        "overrides": overrides,
        "config_yaml": yamlfast.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)
        if config else "",
        "timing": dict(timing or {}),
        "metrics": metrics,
        "metric_rows": metric_rows,
        "headline": headline,
        "has_benchmark": bool(bench),
        "charts": charts,
        "monthly": monthly_returns(t_eq, eq, initial),
        "round_trips": shown,
        "n_round_trips": len(round_trips),
        "per_symbol": sorted(bd.get("per_symbol", {}).items(), key=lambda kv: -(kv[1].get("pnl") or 0.0)),
        "per_theme": sorted(bd.get("per_theme", {}).items(), key=lambda kv: -(kv[1].get("pnl") or 0.0)),
        "rule_rows": rule_rows,
        "strategies": [{"name": name, "file": st.get("file"), "share": st.get("share"),
                        "n_fills": st.get("n_fills"), **{k: (st.get("metrics") or {}).get(k) for k in STRATEGY_METRICS}}
                       for name, st in strategies.items()],
        "universe": results.get("universe") or {},
        "diagnostics": [d for d in results.get("diagnostics") or [] if isinstance(d, Mapping)],
        "n_fills": len(results.get("trades") or []),
        "definitions": [(label, definition) for label, _k, _b, definition in METRIC_DEFINITIONS.values()],
    }

