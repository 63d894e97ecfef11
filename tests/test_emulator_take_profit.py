"""Take-profit orders at the emulator through each venue's real ccxt class: Binance's OCO order list
(POST /api/v3/orderList/oco: a LIMIT_MAKER take-profit above, a STOP_LOSS_LIMIT stop below, the
base held once; one leg triggering or filling expires the other; cancelling cancels the list) and a
take-profit-limit sell alone (Binance TAKE_PROFIT_LIMIT, Kraken ``take-profit-limit`` with the
trigger in ``price`` and the limit in ``price2``), triggered by a rise of the price path."""
from __future__ import annotations

import ccxt
import pytest

from engine.exchange import OcoRequest, OrderRequest, make_client_order_id
from tests.helpers.exchange import WireLog, venue_emulator_and_adapter

SYM, PID = "BTC/USDC", "BTC-USDC"


def _cid(seq: int) -> str:
    return make_client_order_id("tp", 1_700_000_000_000, SYM, "sell", seq)


def oco(take: float = 105.0, stop: float = 95.0, limit: float = 94.0, qty: float = 0.1) -> OcoRequest:
    return OcoRequest(_cid(1), SYM, qty, _cid(2), take, _cid(3), stop, limit)


def _status(emu) -> dict:
    return {o["client_order_id"]: o["status"] for o in emu.orders()}


def test_binance_oco_rests_both_legs_holding_the_base_once_and_is_listed():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        before = emu.balances()["BTC"]
        wire = WireLog(ad.client)
        stop_leg, take_leg = ad.create_oco(oco())
        (p,) = wire.params("POST", "/api/v3/orderList/oco")
        assert {k: p[k] for k in ("side", "quantity", "aboveType", "abovePrice", "belowType", "belowStopPrice",
                                  "belowPrice", "belowTimeInForce", "listClientOrderId", "aboveClientOrderId",
                                  "belowClientOrderId")} == {
            "side": "SELL", "quantity": "0.1", "aboveType": "LIMIT_MAKER", "abovePrice": "105", "belowType": "STOP_LOSS_LIMIT",
            "belowStopPrice": "95", "belowPrice": "94", "belowTimeInForce": "GTC", "listClientOrderId": _cid(1),
            "aboveClientOrderId": _cid(2), "belowClientOrderId": _cid(3)}
        assert (stop_leg.client_order_id, stop_leg.type, stop_leg.status, stop_leg.stop_price, stop_leg.limit_price) == \
            (_cid(3), "stop_limit", "open", 95.0, 94.0)
        assert (take_leg.client_order_id, take_leg.type, take_leg.status, take_leg.limit_price) == \
            (_cid(2), "take_profit", "open", 105.0)
        avail, hold = emu.balances()["BTC"]
        assert hold == pytest.approx(0.1) and avail == pytest.approx(before[0] - 0.1)  # once, not twice
        ad._orders.clear()  # a restart: the venue lists the list and its legs
        assert ad.open_lists() == [{"list": _cid(1), "symbol": SYM, "legs": [_cid(3), _cid(2)]}]
        assert sorted((o.client_order_id, o.type) for o in ad.open_orders()) == \
            sorted([(_cid(3), "stop_limit"), (_cid(2), "take_profit")])
        raw = ad.client.privateGetOrderList({"origClientOrderId": _cid(1)})
        assert (raw["contingencyType"], raw["listOrderStatus"]) == ("OCO", "EXECUTING")


def test_binance_oco_take_profit_fills_on_a_rise_and_the_stop_expires():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        ad.create_oco(oco())
        emu.set_quote(PID, 104.0, 104.2)
        assert ad.fills(0) == []
        emu.set_quote(PID, 105.5, 105.7)
        f, = ad.fills(0)
        assert (f.side, f.qty, f.price, f.liquidity) == ("sell", 0.1, 105.0, "maker")
        assert _status(emu) == {_cid(2): "FILLED", _cid(3): "EXPIRED"}
        assert ad.fetch_order_by_client_id(_cid(3), SYM).status == "canceled"  # ccxt's expired
        assert emu.balances()["BTC"][1] == pytest.approx(0.0) and ad.open_lists() == []
        emu.set_quote(PID, 90.0, 90.2)  # the expired stop never fires
        assert len(ad.fills(0)) == 1


def test_binance_oco_stop_triggers_on_a_fall_and_the_take_profit_expires():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        before = emu.balances()["BTC"]
        ad.create_oco(oco())
        emu.set_quote(PID, 94.5, 94.7)
        f, = ad.fills(0)
        assert (f.price, f.liquidity) == (94.5, "taker")
        assert _status(emu) == {_cid(2): "EXPIRED", _cid(3): "FILLED"}
        avail, hold = emu.balances()["BTC"]
        assert hold == pytest.approx(0.0) and avail == pytest.approx(before[0] - 0.1)  # sold once


def test_binance_oco_cancel_cancels_the_list_and_frees_the_base():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        ad.create_oco(oco())
        legs = ad.cancel_list(_cid(1), SYM, [_cid(3), _cid(2)])
        assert [s.status for s in legs] == ["canceled", "canceled"]
        assert emu.balances()["BTC"][1] == pytest.approx(0.0) and ad.open_lists() == [] and ad.open_orders() == []
        # cancelling one leg (DELETE /api/v3/order) cancels the whole list, as on Binance
        ad.create_oco(OcoRequest(_cid(4), SYM, 0.1, _cid(5), 105.0, _cid(6), 95.0, 94.0))
        assert ad.cancel_order(_cid(6)).status == "canceled"
        assert _status(emu)[_cid(5)] == "CANCELLED"


def test_binance_oco_refused_whole_when_a_leg_would_trigger_at_once():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        ad.markets()
        base = {"symbol": "BTCUSDC", "side": "SELL", "quantity": "0.1", "aboveType": "LIMIT_MAKER", "abovePrice": "99",
                "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": "95", "belowPrice": "94", "belowTimeInForce": "GTC",
                "listClientOrderId": "L1", "aboveClientOrderId": "A1", "belowClientOrderId": "B1"}
        with pytest.raises(ccxt.BaseError, match="Order would immediately match and take"):
            ad.client.privatePostOrderListOco(base)
        with pytest.raises(ccxt.BaseError, match="Stop price would trigger immediately"):
            ad.client.privatePostOrderListOco(base | {"abovePrice": "105", "belowStopPrice": "101"})
        with pytest.raises(ccxt.BaseError, match="Mandatory parameter 'belowStopPrice'"):
            ad.client.privatePostOrderListOco({k: v for k, v in base.items() if k != "belowStopPrice"} | {"abovePrice": "105"})
        assert emu.orders() == [] and emu.balances()["BTC"][1] == pytest.approx(0.0)
        # the adapter says so before sending: a take-profit at or under the bid
        ad.best_bid_ask([SYM])
        legs = ad.create_oco(oco(take=99.0))
        assert [s.status for s in legs] == ["rejected", "rejected"] and "under the bid" in legs[0].reject_reason


WIRE = {"kraken": ("POST", "/0/private/AddOrder", {"ordertype": "take-profit-limit", "type": "sell", "price": "105",
                                                    "price2": "105", "volume": "0.1"}),
        "binance": ("POST", "/api/v3/order", {"type": "TAKE_PROFIT_LIMIT", "side": "SELL", "stopPrice": "105",
                                              "price": "105", "timeInForce": "GTC", "quantity": "0.1"})}


@pytest.mark.parametrize("exchange", ["kraken", "binance"])
def test_a_take_profit_limit_rests_triggers_on_a_rise_and_fills(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        wire = WireLog(ad.client)
        st = ad.create_order(OrderRequest(_cid(7), SYM, "sell", "take_profit", 0.1, 105.0, stop_price=105.0))
        method, path, want = WIRE[exchange]
        (p,) = wire.params(method, path)
        assert {k: p[k] for k in want} == want
        assert (st.status, st.type, st.stop_price, st.limit_price) == ("open", "take_profit", 105.0, 105.0)
        engine = next(o for o in emu.orders() if o["order_type"] == "STOP_LIMIT")
        assert engine["order_configuration"]["stop_limit_stop_limit_gtc"]["stop_direction"] == "STOP_DIRECTION_STOP_UP"
        ad._orders.clear()  # listed as a take-profit after a restart
        assert [(o.type, o.stop_price, o.limit_price) for o in ad.open_orders()] == [("take_profit", 105.0, 105.0)]
        emu.set_quote(PID, 90.0, 90.2)  # a fall does not trigger it
        assert ad.fills(0) == []
        emu.set_quote(PID, 105.3, 105.5)
        f, = ad.fills(0)
        assert (f.side, f.qty, f.price) == ("sell", 0.1, 105.3)
        assert ad.fetch_order_by_client_id(_cid(7), SYM).status == "closed"


@pytest.mark.parametrize("exchange", ["kraken", "binance"])
def test_a_take_profit_the_bid_is_over_already_is_refused(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(OrderRequest(_cid(8), SYM, "sell", "take_profit", 0.1, 99.0, stop_price=99.0))
        assert st.status == "rejected" and ad.open_orders() == []


def _json_sent(wire: WireLog, path: str) -> list[dict]:
    """The JSON bodies of the POSTs to a URL ending in ``path`` (Coinbase's create order)."""
    import json
    return [json.loads(body) for m, url, body in wire.sent if m == "POST" and url.endswith(path)]


def _bracket(ad, take: float = 105.0, stop: float = 95.0, seq: int = 9):
    return ad.create_order(OrderRequest(_cid(seq), SYM, "sell", "bracket", 0.1, take, stop_price=stop))


def test_coinbase_bracket_is_sent_as_trigger_bracket_gtc_rests_and_is_read_back():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        wire = WireLog(ad.client)
        st = _bracket(ad)
        (p,) = _json_sent(wire, "/api/v3/brokerage/orders")
        assert p["order_configuration"] == {"trigger_bracket_gtc": {"base_size": "0.1", "limit_price": "105",
                                                                    "stop_trigger_price": "95"}}
        assert (st.status, st.type, st.limit_price, st.stop_price, st.qty) == ("open", "bracket", 105.0, 95.0, 0.1)
        assert emu.balances()["BTC"][1] == pytest.approx(0.1)  # one order: the base held once
        ad._orders.clear()  # a restart: listed as a bracket, its levels read back from the raw order
        assert [(o.type, o.limit_price, o.stop_price, o.qty) for o in ad.open_orders()] == [("bracket", 105.0, 95.0, 0.1)]


def test_coinbase_bracket_fills_at_its_limit_on_a_rise():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        _bracket(ad)
        emu.set_quote(PID, 104.0, 104.2)
        assert ad.fills(0) == []
        emu.set_quote(PID, 105.5, 105.7)
        f, = ad.fills(0)
        assert (f.price, f.liquidity) == (105.0, "maker")


def test_coinbase_bracket_stop_triggers_on_a_fall_and_sells_at_the_bid():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        _bracket(ad)
        emu.set_quote(PID, 94.5, 94.7)
        f, = ad.fills(0)
        assert (f.price, f.liquidity) == (94.5, "taker")
        assert ad.fetch_order_by_client_id(_cid(9)).status == "closed"


def test_coinbase_bracket_whose_stop_would_trigger_at_once_is_refused():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = _bracket(ad, stop=101.0)
        assert st.status == "rejected" and "INVALID_STOP_PRICE" in st.reject_reason and ad.open_orders() == []


def test_coinbase_take_profit_alone_is_a_stop_limit_triggering_on_a_rise():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        wire = WireLog(ad.client)
        st = ad.create_order(OrderRequest(_cid(10), SYM, "sell", "take_profit", 0.1, 105.0, stop_price=105.0))
        (p,) = _json_sent(wire, "/api/v3/brokerage/orders")
        assert p["order_configuration"] == {"stop_limit_stop_limit_gtc": {
            "base_size": "0.1", "limit_price": "105", "stop_price": "105", "stop_direction": "STOP_DIRECTION_STOP_UP"}}
        assert (st.type, st.stop_price, st.limit_price) == ("take_profit", 105.0, 105.0)
        emu.set_quote(PID, 105.3, 105.5)
        f, = ad.fills(0)
        assert f.price == 105.3
