"""Per-cycle cost of the live loop's pure part (prepare over the stored panel + decide at its
last row) as the panel grows, and the SQLite step cost. Prints figures; asserts nothing.

    python benchmarks/live_cycle.py [N_SYMBOLS]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.cycle.decide import HaltState, Quotes, cycle_plan, decide  # noqa: E402
from engine.cycle.portfolio import Portfolio  # noqa: E402
from engine.cycle.prepare import prepare  # noqa: E402
from engine.live.store import StateStore  # noqa: E402
from engine.market.sample import SampleSpec, load_sample_market  # noqa: E402
from engine.modes.setup import load_rules  # noqa: E402
from tests.helpers.runs import compose_config  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    cfg = compose_config([])
    rules = load_rules(cfg)
    with tempfile.TemporaryDirectory() as d:
        market = load_sample_market(SampleSpec.from_mapping({"n_symbols": n, "n_bars": 8784, "seed": 7}), Path(d))
        for bars in (500, 2000, 8784):
            m = market.select(None, 0, bars)
            t0 = time.perf_counter()
            reps = 3
            for _ in range(reps):
                p = prepare(m, rules)
                t = m.n_bars - 1
                pf = Portfolio.empty(m.n_symbols, 10_000.0)
                decide(cycle_plan(p), t, pf, Quotes(p.close[t], p.store.arrays["spread_bps"][t], np.zeros(n),
                                                    p.store.arrays["volume_usd"][t]), HaltState())
            print(f"prepare+decide, {n} symbols x {bars} bars: {(time.perf_counter() - t0) / reps * 1000:.1f} ms/cycle")
        st = StateStore(Path(d) / "b.sqlite")
        rows = np.random.default_rng(0).random((1, 6, n))
        t0 = time.perf_counter()
        k = 200
        for i in range(k):
            with st.txn() as db:
                st.append_bars(db, np.array([i * 60_000]), rows)
                st.put("state", "portfolio", {"cash": float(i), "qty": [0.0] * n}, db)
        print(f"SQLite step (WAL, synchronous=FULL, 1 bar + state): {(time.perf_counter() - t0) / k * 1000:.2f} ms")
        t0 = time.perf_counter()
        st.bars(n)
        print(f"load {k} stored bars x {n} symbols: {(time.perf_counter() - t0) * 1000:.2f} ms")
        st.close()


if __name__ == "__main__":
    main()
