"""Time and size of the report layer on a one-year, 30-symbol, hourly backtest.

    python benchmarks/report_outputs.py [n_trades] [n_sweep_runs]

Prints figures; asserts nothing.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.report.metrics import buy_and_hold, compute_metrics  # noqa: E402
from engine.report import render  # noqa: E402
from engine.report.outputs import write_run_outputs  # noqa: E402
from engine.report.sweep import write_sweep_report  # noqa: E402
from engine.report.timeutil import iso_to_ms  # noqa: E402
from tests.helpers.results import make_market, make_results  # noqa: E402


def best_of(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def template_load_ms(bytecode_cache: bool) -> float:
    """Loading backtest.html.j2 in a fresh environment: compiled, or read from Jinja's bytecode cache."""
    render.environment.cache_clear()
    make_cache = render._bytecode_cache
    if not bytecode_cache:
        render._bytecode_cache = lambda: None
    try:
        env = render.environment()
    finally:
        render._bytecode_cache = make_cache
    t = time.perf_counter()
    env.get_template("backtest.html.j2")
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    n_trades = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    n_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    r = make_results(n_bars=8784, n_symbols=30, n_trades=n_trades, seed=1)
    times = iso_to_ms(e[0] for e in r["equity"])
    eq = np.array([e[1] for e in r["equity"]])
    ex = np.array([e[1] for e in r["exposure"]])
    _, _, _, close = make_market(8784, 30, 1)
    print(f"bars=8784 symbols=30 round_trips={len(r['round_trips'])} fills={len(r['trades'])}")
    print(f"compute_metrics : {best_of(lambda: compute_metrics(times, eq, ex, r['trades'], r['round_trips'], '1h', 10_000.0)) * 1e3:8.2f} ms")
    print(f"template load   : {min(template_load_ms(False) for _ in range(5)):8.1f} ms compiled, "
          f"{min(template_load_ms(True) for _ in range(5)):.1f} ms from the bytecode cache")
    print(f"buy_and_hold    : {best_of(lambda: buy_and_hold(times, close, 10_000.0)) * 1e3:8.2f} ms")
    with tempfile.TemporaryDirectory() as d:
        t = best_of(lambda: write_run_outputs(Path(d), r, timing={"elapsed_seconds": 1.0}), repeat=3)
        paths = write_run_outputs(Path(d), r, timing={"elapsed_seconds": 1.0})
        print(f"write_run_outputs: {t * 1e3:8.1f} ms")
        for k, p in sorted(paths.items()):
            print(f"  {p.name:<13} {p.stat().st_size / 1e6:6.3f} MB")
        root = Path(d) / "sweep"
        for i in range(n_runs):
            ri = make_results(n_bars=8784, n_symbols=30, n_trades=50, seed=i)
            ri["run"]["overrides"] = [f"universe.params.top={5 + i % 10}", f"seed={i}"]
            write_run_outputs(root / str(i), ri)
        t = best_of(lambda: write_sweep_report(root), repeat=3)
        print(f"write_sweep_report ({n_runs} runs): {t * 1e3:8.1f} ms, "
              f"sweep.html {(root / 'sweep.html').stat().st_size / 1e6:.3f} MB")


if __name__ == "__main__":
    main()
