"""Print how long the market data layer takes: sample generation, cache write/read, loaders.

    python benchmarks/market_speed.py [--repeat 5]

Figures are medians over --repeat runs, in seconds. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_of  # noqa: E402

from engine.market.cache import load_market_file, save_market  # noqa: E402
from engine.market.loaders import load_market  # noqa: E402
from engine.market.sample import SampleSpec, generate_sample_market, load_sample_market  # noqa: E402
from tests.helpers.market import write_market  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # gap warnings are expected here
    spec = SampleSpec()
    gen_s, md = median_of(lambda: generate_sample_market(spec), args.repeat)
    print(f"generate_sample_market {md.n_symbols} x {md.n_bars}: {gen_s:.3f} s")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        save_s, _ = median_of(lambda: save_market(md, folder / "m.npz", key="k"), args.repeat)
        print(f"save_market (atomic npz, {(folder / 'm.npz').stat().st_size / 1e6:.1f} MB): {save_s:.3f} s")
        load_s, _ = median_of(lambda: load_market_file(folder / "m.npz", key="k"), args.repeat)
        print(f"load_market_file (with hash check): {load_s:.3f} s")
        raw_s, _ = median_of(lambda: load_market_file(folder / "m.npz", key="k", verify=False), args.repeat)
        print(f"load_market_file (no hash check): {raw_s:.3f} s")
        load_sample_market(spec, folder / "cache")
        hit_s, _ = median_of(lambda: load_sample_market(spec, folder / "cache"), args.repeat)
        print(f"load_sample_market, cache hit: {hit_s:.3f} s")
        for fmt, source in (("csv", "csv"), ("parquet", "parquet"), ("feather", "freqtrade"), ("json", "freqtrade")):
            sub = folder / fmt
            write_market(md, sub, fmt)
            s, _ = median_of(lambda: load_market(source, sub, "1h"), max(1, args.repeat // 2))
            print(f"load_market({source!r}) from {fmt}, {md.n_symbols} files x {md.n_bars} rows: {s:.3f} s")


if __name__ == "__main__":
    main()
