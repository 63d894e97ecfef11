"""mode=backtest: data -> rules -> prepared history -> the cycle per bar -> results and report."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from engine import run_warnings
from engine.backtest.diagnostics import as_dicts, diagnose
from engine.backtest.engine import run_backtest
from engine.sim.results import build_results
from engine.cycle.memory import reuse_freed_memory
from engine.cycle.prepare import prepare
from engine.market.data import iso_utc
from engine.modes.setup import backtest_settings, load_rules, market_and_features, run_identity
from engine.report.options import ReportOptions
from engine.report.outputs import write_run_outputs
from engine.sweep.job import run_progress

log = logging.getLogger(__name__)


def _backtest(cfg: Mapping[str, Any]):
    from engine.modes.month_chunks import use_chunks

    if use_chunks(cfg):
        return _chunked_backtest(cfg)
    market, shared = market_and_features(cfg)  # a sweep's jobs share the market and its features
    rules = load_rules(cfg)
    settings = backtest_settings(cfg, market)
    log.info("backtest %s: %d symbols x %d bars (%s .. %s)", rules.strategy.name, market.n_symbols,
             settings.stop - settings.start, iso_utc(int(market.times[settings.start])),
             iso_utc(int(market.times[settings.stop - 1])))
    prepared = prepare(market, rules, shared)
    with run_progress(f"backtest {rules.strategy.name}") as progress:
        res = run_backtest(prepared, settings, progress=progress, checkpoint=_trial_checkpoint(cfg, market, settings))
    return market, rules, settings, res


def _chunked_backtest(cfg: Mapping[str, Any]):
    """The backtest chunk by chunk (engine/modes/month_chunks.py): the same results as in
    memory, with memory that follows a chunk of the market, not the run."""
    from engine.backtest.chunked import run_market_chunks
    from engine.modes.month_chunks import month_source

    source = month_source(cfg)
    frame = source.frame
    rules = load_rules(cfg)
    settings = backtest_settings(cfg, frame)
    log.info("backtest %s, chunk by chunk (%d bars each): %d symbols x %d bars (%s .. %s)", rules.strategy.name,
             source.rows, frame.n_symbols, settings.stop - settings.start,
             iso_utc(int(frame.times[settings.start])), iso_utc(int(frame.times[settings.stop - 1])))
    with run_progress(f"backtest {rules.strategy.name}") as progress:
        res = run_market_chunks(source.months, rules, settings, frame, progress=progress,
                                checkpoint=_trial_checkpoint(cfg, frame, settings))
    frame._hash = source.data_hash()  # every month was read: the run's identity names its data
    return frame, rules, settings, res


def _trial_checkpoint(cfg: Mapping[str, Any], market, settings):
    """An Optuna trial's pruning checkpoint when this run is one (engine/sweep/pruning.py)."""
    from engine.sweep.job import job_context

    ctx = job_context()
    if ctx is None or not ctx.multirun:
        return None
    from engine.sweep.pruning import trial_checkpoint

    return trial_checkpoint(ctx.sweeper_settings, (cfg.get("sweep") or {}).get("objective"),
                            market.times[settings.start:settings.stop], market.timeframe, settings.initial_cash)


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    t0 = time.perf_counter()
    with reuse_freed_memory():  # big arrays reuse freed memory: engine/cycle/memory.py
        market, rules, settings, res = _backtest(cfg)
    info = run_identity(cfg, market, rules, overrides, redacted)
    info.update(start=iso_utc(int(market.times[settings.start])), end=iso_utc(int(market.times[settings.stop - 1])))
    results = build_results(res, info)
    found = diagnose(results, market.symbols)
    for d in found:
        log.warning("%s: %s", d.code, d.message)
    # the start-up warnings (config, product table) first: they were logged when found
    results["diagnostics"] = as_dicts(run_warnings.noted() + found)
    out_dir.mkdir(parents=True, exist_ok=True)
    res.trace.save(out_dir / "trace.npz")
    paths = write_run_outputs(out_dir, results, timing={"elapsed_seconds": round(time.perf_counter() - t0, 3)},
                              options=ReportOptions.from_config(cfg.get("report") or {}))
    m = results["metrics"]
    log.info("final equity %.2f, return %.2f%%, %d trades, max drawdown %.2f%%",
             m["final_equity"], 100 * m["total_return"], m["n_trades"], 100 * (m["max_drawdown"] or 0))
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return results
