"""Print how fast the whole backtest pipeline runs: regime, universe, signals, risk,
execution, fills and accounting (``prepare`` + ``run_backtest``), data loaded and reports
excluded, in symbol-bars per second; plus peak memory and a 30-day end-to-end run.

    python benchmarks/backtest_speed.py [--sizes 1,30,100,200,1000] [--bars 8760] [--strategy sma_cross]

Each size runs in its own process (clean peak-memory figures). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(n_symbols: int, n_bars: int, strategy: str, fast: bool, reuse: bool) -> dict:
    from engine.cycle.memory import reuse_freed_memory

    if not reuse:  # prepare alone reuses its own temporaries (engine/cycle/memory.py)
        return _one(n_symbols, n_bars, strategy, fast)
    # data loading, prepare and the loop share freed memory (what mode=backtest does once it
    # wraps them in reuse_freed_memory; see docs/backtest.md, Speed)
    with reuse_freed_memory():
        return _one(n_symbols, n_bars, strategy, fast)


def _one(n_symbols: int, n_bars: int, strategy: str, fast: bool) -> dict:
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.market.sample import SampleSpec, generate_sample_market
    from engine.modes.baseline import compose
    from engine.modes.setup import backtest_settings, load_rules

    cfg = compose([f"strategy={strategy}"])
    market = generate_sample_market(SampleSpec(n_symbols=max(n_symbols, 30), n_bars=n_bars))
    if n_symbols < 30:  # the sample has at least 30 products: keep the most liquid ones
        market = market.select(list(market.symbols[:n_symbols]))
    rules = load_rules(cfg)
    settings = backtest_settings(cfg, market)
    t0 = time.perf_counter()
    p = prepare(market, rules)
    t1 = time.perf_counter()
    res = run_backtest(p, settings, fast=fast)
    t2 = time.perf_counter()
    sb = n_symbols * n_bars
    return {"symbols": n_symbols, "bars": n_bars, "prepare_s": t1 - t0, "loop_s": t2 - t1, "total_s": t2 - t0,
            "symbol_bars_per_s": sb / (t2 - t0), "bars_per_s": n_bars / (t2 - t0), "fills": len(res.fills),
            "decided": res.stats.get("decided"), "skipped": res.stats.get("skipped"),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def end_to_end(n_symbols: int, n_bars: int, runs: int = 5, bytecode: bool = True) -> tuple[float, float]:
    """(median, min) wall seconds of `python run.py` over ``runs`` runs, after one run that
    generates and caches the sample market (a user's first run; not counted).

    ``bytecode``: Python caches compiled modules as usual (a default install; the warm-up run
    writes them). False: a copy of the project with no ``__pycache__`` run under
    PYTHONDONTWRITEBYTECODE=1 (a fresh clone where that is set, as in this sandbox, compiles
    every engine module on every run).
    """
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as d:
        root = ROOT
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            root = Path(d) / "project"
            for part in ("engine", "hydra_plugins", "conf", "rules", "reports"):
                shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy2(ROOT / "run.py", root / "run.py")
        args = [sys.executable, str(root / "run.py"), f"data.sample.n_symbols={n_symbols}",
                f"data.sample.n_bars={n_bars}", f"data.cache_dir={d}/cache"]
        subprocess.run([*args, f"hydra.run.dir={d}/warm"], check=True, capture_output=True, env=env)
        times = []
        for i in range(runs):
            t = time.perf_counter()
            subprocess.run([*args, f"hydra.run.dir={d}/run{i}"], check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t)
        return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,30,100,200,1000")
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--strategy", default="sma_cross")
    ap.add_argument("--slow", action="store_true", help="per-bar reference loop instead of the fast path")
    ap.add_argument("--no-reuse", action="store_true",
                    help="do not keep freed memory across data loading, prepare and the loop")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(int(args.child), args.bars, args.strategy, not args.slow, not args.no_reuse)))
        return
    print(f"strategy={args.strategy} bars={args.bars} path={'per-bar' if args.slow else 'fast'} "
          f"memory={'plain' if args.no_reuse else 'reuse'}")
    print(f"{'symbols':>8} {'prepare s':>10} {'loop s':>8} {'total s':>8} {'sym-bars/s':>12} {'bars/s':>10} "
          f"{'decided':>8} {'fills':>6} {'peak MiB':>9}")
    for n in [int(x) for x in args.sizes.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(n), "--bars", str(args.bars), "--strategy", args.strategy]
        cmd += (["--slow"] if args.slow else []) + (["--no-reuse"] if args.no_reuse else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>8} {r['prepare_s']:>10.3f} {r['loop_s']:>8.3f} {r['total_s']:>8.3f} "
              f"{r['symbol_bars_per_s']:>12,.0f} {r['bars_per_s']:>10,.0f} {r['decided']:>8} {r['fills']:>6} "
              f"{r['peak_rss_mib']:>9.0f}")
    print("30-day hourly backtest of 100 symbols, end to end (python run.py: start-up, config checks, "
          "backtest and every report file), 5 runs:")
    for bytecode, label in ((True, "bytecode cached (a default Python install)"),
                            (False, "no bytecode cache (a fresh clone under PYTHONDONTWRITEBYTECODE=1)")):
        median, best = end_to_end(100, 720, bytecode=bytecode)
        print(f"  {label}: median {median:.2f} s, best {best:.2f} s")

if __name__ == "__main__":
    main()
