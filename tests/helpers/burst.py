"""A burst of orders at one exchange profile's emulator, through that exchange's real ccxt class:
``order_burst("binance_sim", 120)`` with the profile's rate budget, or ``budgeted=False`` with a
budget 1000x the exchange's limits that does not learn from its answers (the control).

The emulator enforces the exchange's own pools (the profile's figures) and records every arrival,
so the peaks it reports are what it *saw*. Orders are resting limit buys at half the bid on one
symbol (Kraken counts orders per pair), without the confirming read after each create
(``orders.confirm_after_create: false``): the burst measures placements.
"""
from __future__ import annotations

import dataclasses
import math
import time

from engine.exchange import ExchangeAdapter, ExchangeCallError, OrderRequest, RateBudget, make_client_order_id
from tests.helpers.exchange import sim_config

PROFILES = ("local_sim", "kraken_sim", "binance_sim")
FAST_RETRY = {"base_delay_s": 0.01, "max_delay_s": 0.05}


def _unbudgeted(rate_limits):
    """The same pools, each admitting 1000x; no pause learnt from Retry-After or error bodies."""
    pools = {k: dataclasses.replace(p, limit_per_s=p.limit_per_s * 1000,
                                    max_count=None if p.max_count is None else p.max_count * 1000)
             for k, p in rate_limits.pools.items()}
    return dataclasses.replace(rate_limits, pools=pools, learn_from_headers=False)


def _server_peaks(emu) -> dict[str, tuple[float, float, str]]:
    """pool -> (peak the server saw, its limit, unit)."""
    limits = getattr(emu, "server_limits", None)
    if limits is None:  # Coinbase: per-second windows
        return {p: (emu.peak_rate(p), float(emu.limits[p]), "req/s") for p in ("public", "private")}
    return {p: (limits.peak(p), s.limit, "counter" if s.kind == "decay" else f"per {s.window_s:g}s")
            for p, s in limits.pools.items()}


def order_burst(profile: str, n: int, budgeted: bool = True, symbol: str = "BTC/USDC") -> dict:
    cfg = sim_config(profile, retry={**FAST_RETRY, **({} if budgeted else {"max_attempts": 1})},
                     orders={"confirm_after_create": False})
    with ExchangeAdapter(cfg) as ad:  # starts the emulator with the profile's real pools
        emu = ad.emulator
        if not budgeted:  # the client's limiter only: the emulator keeps counting the real limits
            ad.budget = ad.client.budget = RateBudget(_unbudgeted(cfg.rate_limits))
        m = ad.markets()[symbol]
        bid = ad.best_bid_ask([symbol])[symbol].bid
        price = math.floor(bid * 0.5 / m.price_increment) * m.price_increment
        qty = math.ceil(max(m.min_size, 1.5 * m.min_notional / price) / m.size_increment) * m.size_increment
        before, limited_before = len(emu.requests), sum(emu.rate_limited.values())
        placed = refused = 0
        t0 = time.perf_counter()
        for i in range(n):
            cid = make_client_order_id(f"burst-{profile}", 0, symbol, "buy", i)
            try:
                st = ad.create_order(OrderRequest(cid, symbol, "buy", "limit", qty, price))
                placed += st.status == "open"
                refused += st.status != "open"
            except ExchangeCallError:
                refused += 1
        elapsed = time.perf_counter() - t0
        metrics = ad.rate_metrics()
        return {"profile": profile, "budgeted": budgeted, "orders": n, "placed": placed, "refused": refused,
                "elapsed_s": elapsed, "requests": len(emu.requests) - before,
                "server_429": sum(emu.rate_limited.values()) - limited_before,
                "server_418": getattr(emu, "banned", 0), "at_exchange": len(emu.orders()),
                "waits": sum(p["pauses"] for p in metrics.values()),
                "waited_s": max((p["paused_s"] for p in metrics.values()), default=0.0),
                "client": metrics, "server_peak": _server_peaks(emu)}
