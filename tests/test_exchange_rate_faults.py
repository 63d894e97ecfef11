"""Each exchange's rate-limit answers through its real ccxt class: Binance's 429 and then its 418
IP ban, both with Retry-After; Kraken's ``EAPI:Rate limit exceeded`` (the per-key call counter)
and ``EOrder:Rate limit exceeded`` (the per-pair order counter), which arrive as HTTP 200.

Waits are checked on the emulator's side, from when each request *arrived*: a lower bound the
client must respect however loaded the machine is (no timing in the other direction)."""
from __future__ import annotations

import pytest

from engine.exchange import ExchangeAdapter, ExchangeCallError
from tests.helpers.exchange import market_order, sim_config

FAST_RETRY = {"base_delay_s": 0.01, "max_delay_s": 0.05}


def _arrivals(emu, route: str) -> list[float]:
    return [t for t, r, _ in emu.requests if r == route]


def _gaps(ts: list[float]) -> list[float]:
    return [b - a for a, b in zip(ts, ts[1:])]


def test_binance_429_then_418_ban_are_waited_out_as_retry_after_says():
    with ExchangeAdapter(sim_config("binance_sim", retry=FAST_RETRY)) as ad:
        ad.markets()
        emu = ad.emulator
        emu.faults.add("rate_limit", "create_order", retry_after=0.4)
        emu.faults.add("rate_limit", "create_order", status=418, retry_after=0.8)
        st = ad.create_order(market_order("BTC/USDC", qty=0.01, seq=1))
        creates = _arrivals(emu, "create_order")
        metrics, orders, banned = ad.rate_metrics(), emu.orders(), emu.banned
    assert st.status == "closed" and st.filled == pytest.approx(0.01)
    assert len(creates) == 3 and len(orders) == 1  # refused twice, placed once
    gap_429, gap_418 = _gaps(creates)
    assert gap_429 >= 0.4 and gap_418 >= 0.8  # each Retry-After waited out in full
    assert banned == 1  # only the injected ban: a client that waits is never banned again
    assert metrics["weight"]["rate_limited"] == 2 and metrics["weight"]["server_pauses"] >= 2


def test_binance_a_client_that_ignores_retry_after_is_banned():
    # the control: without learning from Retry-After the backoff resends at once and draws 418s
    cfg = sim_config("binance_sim", retry={**FAST_RETRY, "max_attempts": 3}, rate_limits={"learn_from_headers": False})
    with ExchangeAdapter(cfg) as ad:
        ad.markets()
        emu = ad.emulator
        emu.faults.add("rate_limit", "create_order", retry_after=60)
        with pytest.raises(ExchangeCallError):
            ad.create_order(market_order("BTC/USDC", qty=0.01, seq=2))
        banned, orders = emu.banned, emu.orders()
    assert banned >= 1 and orders == []


def test_kraken_eapi_rate_limit_on_a_read_pauses_the_call_counter_then_succeeds():
    cfg = sim_config("kraken_sim", retry=FAST_RETRY, rate_limits={"pause_on_limited_s": 0.5})
    with ExchangeAdapter(cfg) as ad:
        ad.markets()
        emu = ad.emulator
        emu.faults.add("rate_limit", "BalanceEx", error="EAPI:Rate limit exceeded")
        balances = ad.balances()
        calls = _arrivals(emu, "BalanceEx")
        metrics = ad.rate_metrics()
    assert ("rate_limit", "BalanceEx") in emu.faults.fired
    assert balances["USDC"].free > 0
    assert len(calls) == 2 and _gaps(calls)[0] >= 0.5
    assert metrics["calls"]["rate_limited"] == 1 and metrics["calls"]["server_pauses"] == 1
    assert metrics["orders"]["rate_limited"] == 0


def test_kraken_eorder_rate_limit_on_create_is_retried_not_taken_for_a_rejection():
    # HTTP 200 {"error": ["EOrder:Rate limit exceeded"]}: the order was not placed; it must be sent
    # again (same cl_ord_id) once the pair's counter has drained, and exist exactly once
    cfg = sim_config("kraken_sim", retry=FAST_RETRY, rate_limits={"pause_on_limited_s": 0.3})
    with ExchangeAdapter(cfg) as ad:
        ad.markets()
        emu = ad.emulator
        emu.faults.add("rate_limit", "create_order", times=2, error="EOrder:Rate limit exceeded")
        req = market_order("BTC/USDC", qty=0.01, seq=3)
        st = ad.create_order(req)
        creates = _arrivals(emu, "create_order")
        metrics, orders = ad.rate_metrics(), emu.orders()
        ad._orders.clear()  # as after a restart: the exchange alone knows it
        found = ad.fetch_order_by_client_id(req.client_order_id, "BTC/USDC")
    assert st.status == "closed" and st.reject_reason is None
    assert len(creates) == 3 and all(g >= 0.3 for g in _gaps(creates))
    assert len(orders) == 1 and found.exchange_order_id == st.exchange_order_id
    assert metrics["orders"]["rate_limited"] == 2 and metrics["orders"]["server_pauses"] == 2
    assert metrics["calls"]["rate_limited"] == 0
