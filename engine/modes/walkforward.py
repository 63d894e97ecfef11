"""mode=walkforward: the market once, the grid searched on each fold's train window, the chosen
parameters traded on its test window; walkforward.json and walkforward.html (engine/research)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from engine.config.secrets import secret_values
from engine.cycle.memory import reuse_freed_memory
from engine.modes.setup import market_for, run_identity
from engine.report.options import ReportOptions
from engine.report.walkforward import walkforward_document, write_walkforward_report
from engine.research.walkforward import run_walkforward
from engine.sweep.job import run_progress

log = logging.getLogger(__name__)


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    t0 = time.perf_counter()
    with reuse_freed_memory():
        market = market_for(cfg)
        with run_progress("walkforward") as progress:
            wf = run_walkforward(cfg, market, progress=progress)
    info = run_identity(cfg, market, wf.trials[0].prepared.rules, overrides, redacted)
    doc = walkforward_document(wf, info)
    for w in wf.warnings:
        log.warning("%s: %s", w.code, w.message)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = ReportOptions.from_config(cfg.get("report") or {})
    paths = write_walkforward_report(out_dir, doc, secret_values(dict(redacted), os.environ, named_only=True),
                                     html=opts.html, max_points=opts.max_chart_points)
    m, st = doc["out_of_sample"]["metrics"], doc["statistics"]
    pbo = (st["pbo"] or {}).get("pbo")
    log.info("walkforward: %d folds, out-of-sample return %.2f%%, Sharpe %s, DSR %s, PBO %s (%.1fs)",
             len(wf.folds), 100 * m["total_return"], _f(m.get("sharpe")), _f(st["deflated_sharpe"]["dsr"]),
             _f(pbo), time.perf_counter() - t0)
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return {"metrics": m, "statistics": {"dsr": st["deflated_sharpe"]["dsr"], "pbo": pbo}}


def _f(v) -> str:
    return "undefined" if v is None else f"{v:.3f}"
