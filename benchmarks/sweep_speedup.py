"""Speed-up of a parallel sweep: 8 backtests with Hydra's basic launcher vs hydra/launcher=local.

    python benchmarks/sweep_speedup.py                 # 8 jobs, 2 workers, the default sample market
    python benchmarks/sweep_speedup.py --workers 2 --n-symbols 30 --n-bars 1500   # a quick look

Each variant runs ``python run.py -m ...`` in a subprocess, as a user would, with the sample
market cache warmed first (both variants read the same cache). Prints wall-clock seconds of
the whole command and of the jobs phase (multirun.yaml written -> last job's results.json),
the speed-up of each, and whether both variants produced identical metrics.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLBACK = "++hydra.callbacks.sweep_setup._target_=engine.sweep.callbacks.SweepSetup"
# 8 jobs: 4 fast windows x 2 risk profiles
GRID = ["strategy.params.fast=12,24,36,48", "risk=conservative,balanced"]


def run(args: list[str], sweep_dir: Path) -> float:
    env = {**os.environ, "RULEBOOK_PROGRESS": "never"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args, f"hydra.sweep.dir={sweep_dir}"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def jobs_phase(sweep_dir: Path) -> float:
    start = (sweep_dir / "multirun.yaml").stat().st_mtime
    return max(p.stat().st_mtime for p in sweep_dir.glob("*/results.json")) - start


def metrics(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in sorted(sweep_dir.glob("*/results.json"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="joblib workers (n_jobs) of the parallel run")
    ap.add_argument("--n-symbols", type=int, default=None, help="sample market size (default: conf/data/sample.yaml)")
    ap.add_argument("--n-bars", type=int, default=None)
    opts = ap.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sweep_speedup_") as tmp:
        tmp_path = Path(tmp)
        data = [f"data.cache_dir={tmp_path / 'cache'}"]
        if opts.n_symbols:
            data.append(f"data.sample.n_symbols={opts.n_symbols}")
        if opts.n_bars:
            data.append(f"data.sample.n_bars={opts.n_bars}")
        # build the market cache once, outside the timings
        run(["-m", "strategy.params.fast=12", "backtest.start=2024-01-01", *data, CALLBACK], tmp_path / "warm")

        basic_dir, par_dir = tmp_path / "basic", tmp_path / "parallel"
        t_basic = run(["-m", *GRID, *data, CALLBACK], basic_dir)
        t_par = run(["-m", *GRID, *data, CALLBACK, "hydra/launcher=local", f"hydra.launcher.n_jobs={opts.workers}"],
                    par_dir)
        j_basic, j_par = jobs_phase(basic_dir), jobs_phase(par_dir)
        same = metrics(basic_dir) == metrics(par_dir)
        n = len(metrics(basic_dir))

    print(f"sweep of {n} backtests on {os.cpu_count()} cores ({' '.join(GRID)}; {' '.join(data[1:]) or 'default market'})")
    print(f"  basic launcher              : {t_basic:6.1f} s whole command, {j_basic:6.1f} s jobs phase")
    print(f"  hydra/launcher=local n_jobs={opts.workers}: {t_par:6.1f} s whole command, {j_par:6.1f} s jobs phase")
    print(f"  speed-up                    : {t_basic / t_par:6.2f}x whole command, {j_basic / j_par:6.2f}x jobs phase")
    print(f"  identical metrics in both   : {'yes' if same else 'NO'}")
    # a parallel sweep can only use cores nobody else is using: read the figures against this
    print(f"  1-min load average          : {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores; other processes compete above ~0)")


if __name__ == "__main__":
    main()
