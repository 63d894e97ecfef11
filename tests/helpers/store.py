"""A small market store of six months with listings, a gap month and a gap across a month border."""
from __future__ import annotations

import numpy as np

from engine.market.store import MarketStore
from tests.helpers.market import HOUR_MS as H_MS
from tests.helpers.market import T0_MS, good_rows

DAY_MS = 24 * H_MS


def month_rows(n: int, t0: int, price: float) -> np.ndarray:
    """``n`` hourly bars with prices on a 0.01 tick (rounding keeps high/low bracketing)."""
    r = np.array(good_rows(n, t0, "1h", price), dtype=np.float64)
    r[:, 1:5] = np.round(r[:, 1:5], 2)
    return r


def months_store(tmp_path) -> MarketStore:
    """Jan..Jun 2024: BTC from Jan 1 for 90 days with a 10-hour gap across the Jan/Feb border
    and one close off the 0.01 tick where the tick inference does not sample; ETH listed
    mid-February until early March; SOL listed in May; April holds no bar of anyone."""
    from engine.market.loaders import sample_positions

    st = MarketStore(tmp_path)
    btc = month_rows(24 * 90, T0_MS, 100.0)
    gap = (btc[:, 0] >= T0_MS + 31 * DAY_MS - 4 * H_MS) & (btc[:, 0] < T0_MS + 31 * DAY_MS + 6 * H_MS)
    btc = btc[~gap]
    skip = set(sample_positions(4 * len(btc)).tolist())
    i = next(i for i in range(1000, len(btc)) if 3 * len(btc) + i not in skip)
    btc[i, 4] = round(btc[i, 4] + (0.005 if btc[i, 4] < btc[i, 2] - 0.01 else -0.005), 3)
    st.write("BTC/USDC", "1h", btc)
    st.write("ETH/USDC", "1h", month_rows(24 * 20, T0_MS + 45 * DAY_MS + 7 * H_MS, 2000.0))
    st.write("SOL/USDC", "1h", month_rows(24 * 40, T0_MS + (31 + 29 + 31 + 30 + 2) * DAY_MS, 20.0))
    return st
