"""100 grid points of sma_cross on the sample year against one run (the fast-sweep benchmark).

    python benchmarks/sweep_grid.py                    # one run vs mode=grid, 10 x 10 points, 2 workers
    python benchmarks/sweep_grid.py --workers 1        # the grid in one process
    python benchmarks/sweep_grid.py --multirun         # also the same 100 points as a Hydra -m sweep (slow)
    python benchmarks/sweep_grid.py --verify           # and check every point against a separate, unshared run
    python benchmarks/sweep_grid.py --repeat 3         # three rounds (one run, then the grid), medians

"One run" is ``python run.py`` with the defaults (sma_cross on the sample market: what a user
types for one backtest, reports included) on a warm sample market cache; the grid is
``python run.py mode=grid`` over the 100 points. Each runs in a subprocess, as a user would.
Prints wall-clock and CPU seconds (user + sys of the subprocess: what a shared, loaded machine
cannot inflate as much), the ratios to one run, the worker count and PASS/FAIL against issue
16's goal: the 100 points in under 10x one run's time on 2 cores (wall: both cores in use; the
CPU ratio is the same work counted on one core).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = [6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
SLOW = [120, 144, 168, 192, 216, 240, 264, 288, 312, 336]


def run(args: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of ``python run.py ARGS``."""
    env = {**os.environ, "RULEBOOK_PROGRESS": "never", "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"run.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def verify(grid_json: Path) -> tuple[int, int]:
    """Re-run every point as a separate backtest (own prepare, no shared features); (same, total)."""
    sys.path.insert(0, str(ROOT))
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules, market_for
    from engine.report.metrics import HEADLINE
    from engine.research.grid import apply_point
    from engine.sim.results import run_metrics
    from tests.helpers.runs import compose_config

    doc = json.loads(grid_json.read_text())
    cfg = compose_config([])
    market = market_for(cfg)
    same = 0
    for r in doc["runs"]:
        pcfg = apply_point(cfg, r["params"])
        res = run_backtest(prepare(market, load_rules(pcfg)), backtest_settings(pcfg, market))
        m, _, _ = run_metrics(res)
        # through JSON, as grid.json holds them
        same += json.loads(json.dumps({k: m.get(k) for k in HEADLINE})) == r["metrics"]
    return same, len(doc["runs"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--multirun", action="store_true", help="also time the 100 points as `run.py -m` (basic launcher)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of (one run, grid); medians are printed")
    ap.add_argument("--verify", action="store_true", help="check each point against a separate run")
    opts = ap.parse_args()
    load = os.getloadavg()[0]
    grid_args = [f"search.grid.strategy.params.fast=[{','.join(map(str, FAST))}]",
                 f"search.grid.strategy.params.slow=[{','.join(map(str, SLOW))}]"]
    ones, grids = [], []
    with tempfile.TemporaryDirectory(prefix="sweep_grid_") as tmp:
        t = Path(tmp)
        run([f"hydra.run.dir={t / 'warm'}"])  # the sample market cache, outside the timings
        for i in range(opts.repeat):
            ones.append(run([f"hydra.run.dir={t / f'one{i}'}"]))
            grids.append(run(["mode=grid", *grid_args, f"search.workers={opts.workers}",
                              f"hydra.run.dir={t / f'grid{i}'}"]))
        one = (statistics.median(w for w, _ in ones), statistics.median(c for _, c in ones))
        grid = (statistics.median(w for w, _ in grids), statistics.median(c for _, c in grids))
        rounds = f", median of {opts.repeat} rounds" if opts.repeat > 1 else ""
        print(f"100 grid points of sma_cross (fast {FAST[0]}..{FAST[-1]} x slow {SLOW[0]}..{SLOW[-1]}) on the sample "
              f"market, {os.cpu_count()} cores{rounds}")
        print(f"  one run (python run.py)         : {one[0]:7.1f} s wall {one[1]:7.1f} s CPU")
        print(f"  mode=grid search.workers={opts.workers}      : {grid[0]:7.1f} s wall {grid[1]:7.1f} s CPU")
        if opts.repeat > 1:
            print("  rounds (one run / grid, wall)   : " + ", ".join(f"{a[0]:.1f}/{b[0]:.1f}" for a, b in zip(ones, grids)))
        rw, rc = grid[0] / one[0], grid[1] / one[1]
        print(f"  grid / one run                  : {rw:5.1f}x wall, {rc:5.1f}x CPU ({opts.workers} worker(s))")
        print(f"  goal: under 10x one run wall on 2 cores: {'PASS' if rw < 10 else 'FAIL'} (wall), "
              f"{'PASS' if rc < 10 else 'FAIL'} (CPU)")
        if opts.multirun:
            mr = run(["-m", f"strategy.params.fast={','.join(map(str, FAST))}",
                      f"strategy.params.slow={','.join(map(str, SLOW))}", f"hydra.sweep.dir={t / 'mr'}"])
            print(f"  run.py -m (basic launcher)      : {mr[0]:7.1f} s wall {mr[1]:7.1f} s CPU"
                  f"   = {mr[0] / one[0]:5.1f}x one run (wall), {mr[1] / one[1]:5.1f}x (CPU), "
                  f"{(mr[1] - one[1]) / (len(FAST) * len(SLOW)):.2f} s CPU per job beyond one run")
        if opts.verify:
            same, n = verify(t / "grid0" / "grid.json")
            print(f"  identical to separate runs      : {same}/{n} {'PASS' if same == n else 'FAIL'}")
    print(f"  1-min load average              : {load:.2f} before, {os.getloadavg()[0]:.2f} after (read wall times against it)")

if __name__ == "__main__":
    main()
