"""The walk-forward report: ``walkforward.json`` (every figure) and ``walkforward.html`` (one
self-contained file) in the run directory of ``mode=walkforward``.

Built from an ``engine.research.walkforward.WalkForwardResult``; the HTML is rendered from the
JSON document only, so what the page shows is exactly what the file holds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from markupsafe import Markup

from engine.backtest.diagnostics import as_dicts
from engine.config.secrets import scrub
from engine.market.data import iso_utc, iso_utc_all
from engine.report.charts import PALETTE, Series, line_chart
from engine.report.jsonio import atomic_write_text, clean, dumps
from engine.report.metrics import HEADLINE, METRIC_DEFINITIONS
from engine.report.render import render

FOLD_METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "win_rate", "exposure", "fees_paid")


def _window(times: np.ndarray, w: tuple[int, int]) -> dict:
    return {"start": iso_utc(int(times[w[0]])), "end": iso_utc(int(times[w[1] - 1])), "bars": w[1] - w[0],
            "first_bar": w[0]}


def _pick(metrics: Mapping[str, Any], keys=HEADLINE) -> dict:
    return {k: metrics.get(k) for k in keys}


def walkforward_document(wf, run_info: Mapping[str, Any]) -> dict:
    """The JSON document of a walk-forward (``wf``: a WalkForwardResult)."""
    times = wf.trials[0].prepared.market.times
    spec, plan = wf.spec, wf.plan
    iso = iso_utc_all(wf.times)
    folds = []
    for f in wf.folds:
        folds.append({
            "fold": f.fold.index,
            "train": _window(times, f.fold.train),
            "test": _window(times, f.fold.test),
            "purge_bars": f.fold.purge,
            "chosen": f.chosen,
            "params": wf.trials[f.chosen].point,
            "n_trials": len(f.evaluated),
            "n_distinct": f.n_distinct,
            "trials": f.evaluated,
            "scores": f.scores,
            "sampler_seed": f.seed,
            "in_sample": _pick(f.train.metrics),
            "out_of_sample": _pick(f.test.metrics),
            "warnings": as_dicts(f.warnings),
        })
    pbo = wf.pbo.to_json() if wf.pbo is not None else None
    return clean({
        "walkforward": {"scheme": plan.scheme, "train_bars": plan.train_bars, "test_bars": plan.test_bars,
                        "purge_bars": plan.purge_bars, "unused_bars": plan.unused_bars, "n_folds": len(plan.folds),
                        "train": spec.train, "test": spec.test, "purge": spec.purge,
                        "objective": spec.objective, "direction": spec.direction, "search": spec.search,
                        "n_trials": spec.n_trials, "space_points": spec.space_points,
                        "grid": spec.axes, "n_points": len(wf.trials), "min_trades": spec.min_trades,
                        "warn": {"oos_sharpe_fraction": spec.oos_sharpe_fraction, "pbo": spec.pbo_warn}},
        "folds": folds,
        "out_of_sample": {"start": iso[0], "end": iso[-1], "metrics": wf.metrics,
                          "equity": [[a, float(b)] for a, b in zip(iso, wf.equity)]},
        "benchmark": {"metrics": wf.benchmark, "equity": [[a, float(b)] for a, b in zip(iso, wf.benchmark_equity)]},
        "in_sample": wf.in_sample,
        "statistics": {"deflated_sharpe": wf.dsr.to_json(), "pbo": pbo, "parameter_stability": wf.stability},
        "grid": [{"index": t.index, "params": t.point, "lookback_bars": t.lookback.bars,
                  "span_sharpe_per_bar": s} for t, s in zip(wf.trials, wf.span_sharpes)],
        "warnings": as_dicts(wf.warnings),
        "run": dict(run_info),
    })


def _series(pairs) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([np.datetime64(p[0].replace("Z", ""), "ms").astype(np.int64) for p in pairs], dtype=np.int64)
    return x, np.array([p[1] if p[1] is not None else np.nan for p in pairs], dtype=np.float64)


def walkforward_context(doc: Mapping[str, Any], max_points: int = 2000) -> dict:
    ox, oy = _series(doc["out_of_sample"]["equity"])
    bx, by = _series(doc["benchmark"]["equity"])
    chart = line_chart([Series("Stitched out-of-sample equity", ox, oy, PALETTE[0], width=2.0),
                        Series("Buy & hold", bx, by, PALETTE[1])],
                       title="Stitched out-of-sample equity vs buy & hold", max_points=max_points, chart_id="oos-equity")
    columns = [{"key": m, "label": METRIC_DEFINITIONS[m][0], "kind": METRIC_DEFINITIONS[m][1]} for m in FOLD_METRICS]
    headline = [{"key": k, "label": METRIC_DEFINITIONS[k][0], "kind": METRIC_DEFINITIONS[k][1],
                 "value": doc["out_of_sample"]["metrics"].get(k), "bench": doc["benchmark"]["metrics"].get(k)}
                for k in ("total_return", "sharpe", "max_drawdown", "n_trades")]
    return {"title": f"rulebook walk-forward: {doc['run'].get('strategy', '')}", "doc": doc, "wf": doc["walkforward"],
            "folds": doc["folds"], "columns": columns, "headline": headline, "stats": doc["statistics"],
            "warnings": doc["warnings"], "chart": Markup(chart), "param_keys": list(doc["walkforward"]["grid"]),
            "definitions": {c["key"]: METRIC_DEFINITIONS[c["key"]][3] for c in columns}}


def write_walkforward_report(out_dir: Path, doc: Mapping[str, Any], secrets=(), html: bool = True,
                             max_points: int = 2000) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {"walkforward_json": atomic_write_text(out_dir / "walkforward.json", scrub(dumps(doc, cleaned=True), secrets))}
    if html:
        page = render("walkforward.html.j2", walkforward_context(doc, max_points))
        paths["walkforward_html"] = atomic_write_text(out_dir / "walkforward.html", scrub(page, secrets))
    return paths
