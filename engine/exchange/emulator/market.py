"""The emulator's simulated market: a deterministic price path per product and a clock.

The path is stored as (S, N) step bars (open/high/low/close/volume). ``index`` is the
current step: in step mode tests move it with ``advance()``; in clock mode it follows
wall time accelerated by ``speed``. Nothing after ``index`` is ever served (no future
candles). Quotes are the current close +- half the product's spread, unless a test
pinned them with ``set_quote``. ``gap(product_id, fraction)`` (a price fault: the ``gap`` fault
of faults.py fires it) scales a product's path from the next step on, so that step opens and
trades ``fraction`` under the price now: nothing trades in between (a gap through a stop and its
limit).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

# name, start price, price increment, base increment, daily vol
_CATALOGUE = (
    ("BTC", 60_000.0, 0.01, 1e-8, 0.03), ("ETH", 3_000.0, 0.01, 1e-8, 0.04),
    ("SOL", 150.0, 0.01, 1e-8, 0.06), ("ADA", 0.45, 0.0001, 1e-8, 0.06),
    ("AVAX", 35.0, 0.01, 1e-8, 0.07), ("LINK", 15.0, 0.001, 1e-8, 0.06),
    ("DOGE", 0.15, 0.00001, 0.1, 0.08), ("LTC", 80.0, 0.01, 1e-8, 0.05),
    ("DOT", 7.0, 0.001, 1e-8, 0.06), ("XLM", 0.11, 0.000001, 1.0, 0.06),
    ("UNI", 8.0, 0.001, 1e-6, 0.07), ("ATOM", 9.0, 0.001, 1e-6, 0.06),
)

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the step grid's origin in generated mode


@dataclass
class Product:
    product_id: str
    base: str
    quote: str
    price_increment: float
    base_increment: float
    base_min_size: float
    quote_min_size: float
    spread_bps: float
    status: str = "online"
    trading_disabled: bool = False
    cancel_only: bool = False
    limit_only: bool = False
    post_only: bool = False

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"


def _round_to(x: float, inc: float, up: bool) -> float:
    steps = x / inc
    steps = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    decimals = max(0, -int(math.floor(math.log10(inc)))) if inc < 1 else 0
    return round(steps * inc, decimals + 2)


class SimMarket:
    def __init__(self, products: list[Product], times_ms: np.ndarray, o, h, l, c, v,
                 start_index: int, speed: float | None = None, clock=time.monotonic):
        self.products = {p.product_id: p for p in products}
        self.columns = {p.product_id: j for j, p in enumerate(products)}
        self.times_ms = times_ms
        self.step_ms = int(times_ms[1] - times_ms[0]) if len(times_ms) > 1 else 60_000
        self.open, self.high, self.low, self.close, self.volume = o, h, l, c, v
        self._index = int(start_index)
        self.speed = speed
        self.clock = clock
        self._t0 = clock()
        self._pinned: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    # -- construction -----------------------------------------------------------------
    @classmethod
    def generate(cls, seed: int = 7, n_products: int = 8, quote: str = "USDC", history_steps: int = 2_000,
                 future_steps: int = 20_000, step_ms: int = 60_000, speed: float | None = None,
                 clock=time.monotonic) -> "SimMarket":
        if not 1 <= n_products <= len(_CATALOGUE):
            raise ValueError(f"emulator products: found {n_products}, expected 1..{len(_CATALOGUE)}")
        rng = np.random.default_rng(seed)
        cat = _CATALOGUE[:n_products]
        steps = history_steps + future_steps
        per_step = np.array([vol for *_, vol in cat]) * math.sqrt(step_ms / 86_400_000)
        rets = rng.standard_normal((steps, n_products)) * per_step
        start = np.array([p for _, p, *_ in cat])
        close = start * np.exp(np.cumsum(rets, axis=0))
        open_ = np.vstack([start[None, :], close[:-1]])
        wiggle = np.abs(rng.standard_normal((steps, n_products))) * per_step * 0.5
        high = np.maximum(open_, close) * (1 + wiggle)
        low = np.minimum(open_, close) * (1 - wiggle)
        volume = rng.lognormal(3.0, 1.0, (steps, n_products)) * (1e5 / start)
        products = []
        for j, (base, price, pinc, binc, _) in enumerate(cat):
            spread = float(rng.uniform(2, 20))
            products.append(Product(f"{base}-{quote}", base, quote, pinc, binc,
                                    base_min_size=binc, quote_min_size=1.0, spread_bps=spread))
        times = T0_MS + np.arange(steps, dtype=np.int64) * step_ms
        return cls(products, times, open_, high, low, close, volume, history_steps, speed, clock)

    @classmethod
    def from_market_data(cls, md, start_index: int | None = None, speed: float | None = None,
                         clock=time.monotonic) -> "SimMarket":
        """Replay a rulebook MarketData panel (its bars become the emulator's steps)."""
        products = []
        for info in md.info:
            spread = np.nanmedian(md.spread_bps[:, md.index_of(info.symbol)])
            products.append(Product(info.symbol.replace("/", "-"), info.base, info.quote,
                                    info.price_increment, info.size_increment, info.size_increment,
                                    info.min_notional, float(spread) if np.isfinite(spread) else 10.0))
        start = md.n_bars // 2 if start_index is None else start_index
        return cls(products, md.times.astype(np.int64), md.open, md.high, md.low, md.close, md.volume,
                   start, speed, clock)

    # -- clock ------------------------------------------------------------------------
    @property
    def index(self) -> int:
        with self._lock:
            return self._now()

    def _now(self) -> int:  # (under the lock)
        if self.speed:
            elapsed_ms = (self.clock() - self._t0) * 1000.0 * self.speed
            return min(self._index + int(elapsed_ms // self.step_ms), len(self.times_ms) - 1)
        return self._index

    def advance(self, steps: int = 1) -> int:
        with self._lock:
            self._index = min(self._index + steps, len(self.times_ms) - 1)
            return self._index

    def now_ms(self) -> int:
        return int(self.times_ms[self.index]) + self.step_ms  # the current step has closed

    # -- a price fault ----------------------------------------------------------------
    def gap(self, product_id: str, fraction: float) -> int:
        """Gap ``product_id``'s price down by ``fraction`` (0 < fraction < 1) from the next step on: that
        step's bar and every one after are the path's own scaled by 1 - fraction, so it opens, trades
        and closes that far under where the price is now and nothing trades in between. Deterministic
        (the same path, scaled; the served steps are never rewritten); returns the step it starts at.
        A quote pinned by ``set_quote`` stays pinned."""
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"gap({product_id}): fraction {fraction} must be in (0, 1)")
        j = self.columns[product_id]
        with self._lock:  # the index cannot reach the next step while the path is rewritten
            start = self._now() + 1
            for name in ("open", "high", "low", "close"):
                a = getattr(self, name).copy()  # never the caller's arrays (a replayed MarketData's own)
                a[start:, j] *= 1.0 - float(fraction)
                setattr(self, name, a)
        return start

    # -- quotes -----------------------------------------------------------------------
    def set_quote(self, product_id: str, bid: float, ask: float) -> None:
        if not bid < ask:
            raise ValueError(f"set_quote({product_id}): bid {bid} must be below ask {ask}")
        with self._lock:
            self._pinned[product_id] = (bid, ask)

    def quote(self, product_id: str) -> tuple[float, float] | None:
        p = self.products[product_id]
        with self._lock:
            pinned = self._pinned.get(product_id)
        if pinned:
            return pinned
        mid = float(self.close[self.index, self.columns[product_id]])
        if not math.isfinite(mid):
            return None
        half = mid * p.spread_bps / 2e4
        return _round_to(mid - half, p.price_increment, up=False), _round_to(mid + half, p.price_increment, up=True)

    # -- candles ----------------------------------------------------------------------
    def candles(self, product_id: str, granularity_ms: int, start_ms: int, end_ms: int) -> list[dict]:
        """Bars of ``granularity_ms`` opening in [start_ms, end_ms), newest first (Coinbase order)."""
        j = self.columns[product_id]
        last = self.index
        mask = (self.times_ms >= start_ms) & (self.times_ms < end_ms)
        idx = np.nonzero(mask)[0]
        idx = idx[idx <= last]
        if idx.size == 0:
            return []
        group = max(1, granularity_ms // self.step_ms)
        buckets = (self.times_ms[idx] // (group * self.step_ms)) * (group * self.step_ms)
        out = []
        for b in np.unique(buckets):
            sel = idx[buckets == b]
            c = self.close[sel, j]
            ok = np.isfinite(c)
            if not ok.any():
                continue
            sel = sel[ok]
            out.append({"start": str(int(b) // 1000),
                        "open": repr(float(self.open[sel[0], j])), "high": repr(float(self.high[sel, j].max())),
                        "low": repr(float(self.low[sel, j].min())), "close": repr(float(self.close[sel[-1], j])),
                        "volume": repr(float(np.nansum(self.volume[sel, j])))})
        out.reverse()
        return out

    def volume_24h(self, product_id: str) -> float:
        j = self.columns[product_id]
        n = max(1, 86_400_000 // self.step_ms)
        i = self.index
        return float(np.nansum(self.volume[max(0, i - n + 1): i + 1, j]))
