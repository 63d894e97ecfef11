"""Print where a backtest's time goes: cProfile of ``prepare`` and of ``run_backtest`` separately.

    python benchmarks/profile_backtest.py [--symbols 1000] [--bars 8760] [--strategy sma_cross]
                                          [--sort tottime] [--top 30] [--slow]

Prints figures only (nothing is asserted). Profiling adds overhead: compare runs of this
script with each other, and take absolute speeds from benchmarks/backtest_speed.py.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--strategy", default="sma_cross")
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--sort", default="tottime", choices=["tottime", "cumulative", "ncalls"])
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--slow", action="store_true", help="profile the per-bar reference loop")
    args = ap.parse_args()

    from engine.backtest.engine import run_backtest
    from engine.cycle.memory import reuse_freed_memory
    from engine.cycle.prepare import prepare
    from engine.market.sample import SampleSpec, generate_sample_market
    from engine.modes.baseline import compose
    from engine.modes.setup import backtest_settings, load_rules

    cfg = compose([f"strategy={args.strategy}"])
    with reuse_freed_memory():
        market = generate_sample_market(SampleSpec(n_symbols=max(args.symbols, 30), n_bars=args.bars, timeframe=args.timeframe))
        if args.symbols < 30:
            market = market.select(list(market.symbols[:args.symbols]))
        rules, settings = load_rules(cfg), backtest_settings(cfg, market)
        for name, run in (("prepare", lambda: prepare(market, rules)),
                          ("loop", lambda: run_backtest(p, settings, fast=not args.slow))):
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            out = run()
            prof.disable()
            print(f"== {name}: {time.perf_counter() - t0:.3f} s (profiled) ==")
            if name == "prepare":
                p = out
            else:
                print(f"decided {out.stats['decided']}, skipped {out.stats['skipped']}, fills {len(out.fills)}")
            pstats.Stats(prof, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
