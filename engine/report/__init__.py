"""Reports: metrics, the HTML backtest report, CSV outputs and the sweep summary.

Public API::

    compute_metrics(times_ms, equity, exposure, fills, round_trips, timeframe, initial_equity) -> dict
    buy_and_hold(times_ms, close, initial_equity) -> np.ndarray
    benchmark(times_ms, close, timeframe, initial_equity) -> (equity, metrics)
    write_run_outputs(run_dir, results, timing=None, options=None) -> dict[str, Path]
    write_sweep_report(sweep_dir) -> dict[str, Path];  SweepReportCallback (Hydra callback)
"""
from engine.report.errors import ReportError
from engine.report.metrics import METRIC_DEFINITIONS, benchmark, buy_and_hold, compute_metrics
from engine.report.options import ReportOptions
from engine.report.outputs import render_backtest_report, write_run_outputs

__all__ = ["METRIC_DEFINITIONS", "ReportError", "ReportOptions", "benchmark", "buy_and_hold", "compute_metrics",
           "render_backtest_report", "write_run_outputs"]
