"""Stop orders at the emulator (Coinbase front end) through the real ccxt coinbase class: the
``stop_limit_stop_limit_gtc`` configuration ccxt sends for a limit order with ``stopPrice``,
triggered by the emulator's own price path and filled by its ordinary matching."""
from __future__ import annotations

import pytest

from engine.exchange import OrderRequest, make_client_order_id
from tests.helpers.exchange import emulator_and_adapter

SYM, PID = "BTC/USDC", "BTC-USDC"


def stop_order(stop: float, limit: float, qty: float = 0.1, seq: int = 0) -> OrderRequest:
    cid = make_client_order_id("stops", 1_700_000_000_000, SYM, "sell", seq)
    return OrderRequest(cid, SYM, "sell", "stop_limit", qty, round(limit, 2), stop_price=round(stop, 2))


def _wire(emu, cid: str) -> dict:
    return next(o for o in emu.orders() if o["client_order_id"] == cid)


def test_stop_limit_rests_with_coinbase_configuration_and_holds_the_base():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        base_before = emu.balances()["BTC"]
        st = ad.create_order(stop_order(95.0, 94.0))
        assert (st.status, st.type, st.stop_price, st.limit_price) == ("open", "stop_limit", 95.0, 94.0)
        wire = _wire(emu, st.client_order_id)
        assert wire["order_configuration"] == {"stop_limit_stop_limit_gtc": {
            "base_size": "0.1", "limit_price": "94", "stop_price": "95", "stop_direction": "STOP_DIRECTION_STOP_DOWN"}}
        assert wire["order_type"] == "STOP_LIMIT" and wire["status"] == "OPEN"
        avail, hold = emu.balances()["BTC"]
        assert hold == pytest.approx(0.1) and avail == pytest.approx(base_before[0] - 0.1)
        assert ad.fills(0) == []  # resting: nothing traded
        ad.cancel_order(st.client_order_id)
        assert emu.balances()["BTC"][1] == pytest.approx(0.0)


def test_touch_at_the_stop_fills_at_the_bid_as_taker():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(95.0, 94.0))
        emu.set_quote(PID, 96.0, 96.2)
        assert _wire(emu, st.client_order_id)["status"] == "OPEN"  # above the stop: nothing
        emu.set_quote(PID, 94.5, 94.7)
        f, = ad.fills(0)
        assert (f.side, f.qty, f.price, f.liquidity) == ("sell", 0.1, 94.5, "taker")
        assert ad.fetch_order_by_client_id(st.client_order_id).status == "closed"


def test_gap_through_the_limit_rests_until_the_bid_comes_back_and_fills_at_the_limit():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(95.0, 94.0))
        emu.set_quote(PID, 90.0, 90.2)  # triggered, but the bid is under the limit
        assert ad.fills(0) == [] and _wire(emu, st.client_order_id)["status"] == "OPEN"
        emu.set_quote(PID, 94.0, 94.2)
        f, = ad.fills(0)
        assert (f.price, f.liquidity) == (94.0, "maker")


def test_a_low_of_the_price_path_triggers_though_the_close_stays_above():
    with emulator_and_adapter() as (emu, ad):
        m, j = emu.market, emu.market.columns[PID]
        i = m.index
        # the first step whose low dips more than 2 bps under both closes around it
        while not m.low[i + 1, j] < min(m.close[i, j], m.close[i + 1, j]) * (1 - 4e-4):
            i += 1
        emu.advance(i - m.index)
        bid_now = m.quote(PID)[0]
        stop = round((m.low[i + 1, j] + min(m.close[i, j], m.close[i + 1, j]) * (1 - 4e-4)) / 2, 2)
        assert stop < bid_now
        st = ad.create_order(stop_order(stop, stop * 0.99))
        emu.advance()
        bid_next = m.quote(PID)[0]
        assert bid_next > stop  # the touch alone would not have triggered it
        f, = ad.fills(0)
        assert f.price == bid_next and ad.fetch_order_by_client_id(st.client_order_id).status == "closed"


def test_a_stop_that_would_trigger_at_once_is_refused():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(101.0, 100.0))
        assert st.status == "rejected" and "INVALID_STOP_PRICE" in (st.reject_reason or "")
