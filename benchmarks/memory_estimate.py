"""Print the memory estimate that refuses oversized runs (engine/market/memory.py) against the
measured peak RSS of real backtests, so the constants there can be checked on any machine.

    python benchmarks/memory_estimate.py [--sizes 30x8760,100x8760,400x8760,30x87600]

Each size runs ``benchmarks/backtest_speed.py --child`` in its own process. Nothing is asserted;
an estimate below a measured peak means the constants need raising.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from engine.market.memory import estimate_bytes

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="30x8760,100x8760,400x8760,30x87600")
    ap.add_argument("--strategy", default="sma_cross")
    args = ap.parse_args()
    print(f"{'symbols':>8} {'bars':>8} {'measured MiB':>13} {'estimate MiB':>13} {'estimate/measured':>18}")
    for size in args.sizes.split(","):
        n, t = (int(x) for x in size.split("x"))
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "backtest_speed.py"), "--child", str(n),
                              "--bars", str(t), "--strategy", args.strategy],
                             check=True, capture_output=True, text=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]
        est = estimate_bytes(t, n) / 2**20
        print(f"{n:>8} {t:>8} {measured:>13,.0f} {est:>13,.0f} {est / measured:>18.2f}")


if __name__ == "__main__":
    main()
