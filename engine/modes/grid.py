"""mode=grid: every point of ``search.grid`` backtested in this process (engine/research/search.py);
grid.json and grid.html (the sweep report's table, charts, heatmap and deflated Sharpe)."""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from engine.config.secrets import scrub, secret_values
from engine.errors import UserError
from engine.modes.setup import market_for, run_identity, load_rules
from engine.report.jsonio import atomic_write_text, dumps
from engine.report.metrics import HEADLINE, bars_per_year
from engine.report.render import render
from engine.report.sweep import RunRow, best_runs, deflated_best, sweep_context, swept_params
from engine.research.grid import grid_points, search_axes
from engine.research.search import evaluate_points
from engine.sweep.job import run_progress

log = logging.getLogger(__name__)
_FIXED = ("data", "seed", "mode", "search", "walkforward")


def grid_summary(results, timeframe: str, name: str) -> dict[str, Any]:
    rows = [RunRow(str(r.index), "ok", [f"{k}={v}" for k, v in r.point.items()], params=dict(r.point),
                   metrics={k: r.metrics.get(k) for k in HEADLINE}) for r in results]
    best = best_runs(rows)
    b = best.get("sharpe")
    dsr = None
    if b is not None:
        dsr = deflated_best(b, results[int(b)].returns, [r.metrics.get("sharpe") for r in rows],
                            1.0 / math.sqrt(bars_per_year(timeframe)))
    return {"sweep_dir": name, "n_runs": len(rows), "n_failed": 0, "params": swept_params(rows),
            "metrics": list(HEADLINE), "best": best, "deflated_sharpe": dsr, "runs": [r.to_json() for r in rows]}


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    t0 = time.perf_counter()
    search = cfg.get("search") or {}
    axes = search_axes(search.get("grid") or {}, "search.grid", _FIXED, "the data and the seed")
    points = grid_points(axes)
    market = market_for(cfg)
    log.info("grid: %d points (%s) on %d symbols x %d bars", len(points), " x ".join(f"{k}[{len(v)}]" for k, v in
             axes.items()), market.n_symbols, market.n_bars)
    with run_progress("grid") as progress:
        results = evaluate_points(cfg, market, points, int(search.get("workers", 1)), "search.grid", progress)
    summary = grid_summary(results, market.timeframe, out_dir.name)
    summary["run"] = run_identity(cfg, market, load_rules(cfg), overrides, redacted)
    secrets = secret_values(dict(redacted), os.environ, named_only=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = sweep_context(summary)
    ctx["title"] = f"rulebook grid: {summary['run']['strategy']} ({len(points)} points)"
    paths = {"grid_json": atomic_write_text(out_dir / "grid.json", scrub(dumps(summary), secrets)),
             "grid_html": atomic_write_text(out_dir / "grid.html", scrub(render("sweep.html.j2", ctx), secrets))}
    best = summary["best"].get("sharpe")
    log.info("grid: %d points in %.1fs; best Sharpe: point %s %s, deflated Sharpe %s", len(points),
             time.perf_counter() - t0, best, results[int(best)].point if best is not None else "",
             (summary["deflated_sharpe"] or {}).get("dsr"))
    for k, p in sorted(paths.items()):
        print(f"{k}: {p}")
    return {"metrics": results[int(best)].metrics if best is not None else {}, "summary": summary}
