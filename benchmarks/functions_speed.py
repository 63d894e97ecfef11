"""Time every series function of the rule language over a (bars x symbols) panel.

    python benchmarks/functions_speed.py                  # 8,784 bars (a year of 1h) x 2,000 symbols
    python benchmarks/functions_speed.py --bars 2000 --symbols 500 --repeat 3

Prints one line per function: the best of ``--repeat`` runs in wall-clock and CPU time, and
the throughput in million cells per second. Element-wise functions are timed on one per-cycle (N,) vector.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import best_of, runs  # noqa: E402

from engine.rules.functions import FUNCTIONS  # noqa: E402


def panel(bars: int, symbols: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random-walk high/low/close with per-symbol listing dates (NaN prefixes)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (bars, symbols)), axis=0))
    listed = rng.integers(0, bars // 2, symbols)
    close[np.arange(bars)[:, None] < listed[None, :]] = np.nan
    spread = rng.uniform(0.0, 0.02, (bars, symbols))
    return close * (1 + spread), close * (1 - spread), close


def best_wall_cpu(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (CPU time is the steadier figure on a shared machine)."""
    wall, cpu, _ = runs(fn, repeat)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=8784)
    ap.add_argument("--symbols", type=int, default=2000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    high, low, close = panel(args.bars, args.symbols, args.seed)
    cond = np.nan_to_num(close) > np.nanmedian(close)
    cells = close.size
    print(f"series functions over {args.bars} bars x {args.symbols} symbols "
          f"({cells / 1e6:.1f}M cells), window {args.window}, best of {args.repeat}")
    for name, spec in FUNCTIONS.items():
        if spec.kind != "series":
            continue
        call = []
        for p in spec.params:
            if p.type == "window":
                call.append(args.window)
            elif p.type == "bool_series":
                call.append(cond)
            elif p.type == "number":
                call.append(p.default)
            else:
                call.append({"high": high, "low": low}.get(p.name, close))
        wall, cpu = best_wall_cpu(lambda: spec.impl(*call), args.repeat)
        print(f"  {name:<12} wall {wall * 1000:7.1f} ms   cpu {cpu * 1000:7.1f} ms   {cells / wall / 1e6:6.1f} Mcells/s")

    row = close[-1]
    print(f"element-wise functions on one ({args.symbols},) vector, best of 200 calls")
    extra = {"min": (row,), "max": (row,), "clip": (90.0, 110.0), "round": (2,), "nan_to": (0.0,)}
    for name, spec in FUNCTIONS.items():
        if spec.kind != "elementwise":
            continue
        a = (row, *extra.get(name, ()))
        wall = best_of(lambda: spec.impl(*a), 200)
        print(f"  {name:<12} {wall * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
