"""Stop orders at the emulator through each venue's real ccxt class: the stop-limit sell ccxt sends
for a limit order with the adapter's stop params (Coinbase ``stop_limit_stop_limit_gtc``; Kraken
AddOrder ``ordertype=stop-loss-limit`` with ``price`` the trigger and ``price2`` the limit; Binance
POST /api/v3/order ``type=STOP_LOSS_LIMIT`` with ``stopPrice``, ``price``, ``timeInForce``), triggered
by the emulator's own price path and filled by its ordinary matching (one mechanism for all three)."""
from __future__ import annotations

import ccxt
import pytest

from engine.exchange import OrderRequest, make_client_order_id
from tests.helpers.exchange import WireLog, venue_emulator_and_adapter

SYM, PID = "BTC/USDC", "BTC-USDC"
VENUES = ["coinbase", "kraken", "binance"]
# how each venue refuses a stop that would trigger at once (the emulator's wire answer)
REFUSED = {"coinbase": "INVALID_STOP_PRICE", "kraken": "EGeneral:Invalid arguments:price",
           "binance": "Stop price would trigger immediately."}


def stop_order(stop: float, limit: float, qty: float = 0.1, seq: int = 0) -> OrderRequest:
    cid = make_client_order_id("stops", 1_700_000_000_000, SYM, "sell", seq)
    return OrderRequest(cid, SYM, "sell", "stop_limit", qty, round(limit, 2), stop_price=round(stop, 2))


def _engine(emu, cid: str, ad) -> dict:
    """The emulator engine's record of the order whose client id is ``cid`` (as the adapter sent it)."""
    from engine.exchange.ids import to_native
    native = to_native(cid, ad.config.client_id.style)
    return next(o for o in emu.orders() if o["client_order_id"] == native)


def _sent_as(exchange: str, wire: WireLog) -> dict:
    """The one stop create request ccxt sent, in the venue's own parameters."""
    if exchange == "kraken":
        (p,) = wire.params("POST", "/0/private/AddOrder")
        return {k: p[k] for k in ("ordertype", "type", "price", "price2", "volume")}
    if exchange == "binance":
        (p,) = wire.params("POST", "/api/v3/order")
        return {k: p[k] for k in ("type", "side", "stopPrice", "price", "timeInForce", "quantity")}
    return {}


WIRE = {"coinbase": {},
        "kraken": {"ordertype": "stop-loss-limit", "type": "sell", "price": "95", "price2": "94", "volume": "0.1"},
        "binance": {"type": "STOP_LOSS_LIMIT", "side": "SELL", "stopPrice": "95", "price": "94", "timeInForce": "GTC",
                    "quantity": "0.1"}}


@pytest.mark.parametrize("exchange", VENUES)
def test_stop_limit_rests_in_the_venue_form_is_listed_holds_the_base_and_cancels(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        base_before = emu.balances()["BTC"]
        wire = WireLog(ad.client)
        st = ad.create_order(stop_order(95.0, 94.0))
        assert (st.status, st.type, st.stop_price, st.limit_price) == ("open", "stop_limit", 95.0, 94.0)
        assert _sent_as(exchange, wire) == WIRE[exchange]
        engine = _engine(emu, st.client_order_id, ad)
        # the engine's one stop (every front end places it the same way)
        assert engine["order_configuration"] == {"stop_limit_stop_limit_gtc": {
            "base_size": "0.1", "limit_price": "94" if exchange == "coinbase" else "94.0",
            "stop_price": "95" if exchange == "coinbase" else "95.0", "stop_direction": "STOP_DIRECTION_STOP_DOWN"}}
        assert engine["order_type"] == "STOP_LIMIT" and engine["status"] == "OPEN"
        avail, hold = emu.balances()["BTC"]
        assert hold == pytest.approx(0.1) and avail == pytest.approx(base_before[0] - 0.1)
        assert ad.fills(0) == []  # resting: nothing traded
        ad._orders.clear()  # a restart: the venue's open orders list it as a stop, trigger and limit read back
        listed = ad.open_orders()
        assert [(o.client_order_id, o.type, o.stop_price, o.limit_price, o.qty) for o in listed] == \
            [(st.client_order_id, "stop_limit", 95.0, 94.0, 0.1)]
        assert ad.cancel_order(st.client_order_id).status == "canceled"
        assert emu.balances()["BTC"][1] == pytest.approx(0.0) and ad.open_orders() == []


@pytest.mark.parametrize("exchange", VENUES)
def test_touch_at_the_stop_fills_at_the_bid_as_taker(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(95.0, 94.0))
        emu.set_quote(PID, 96.0, 96.2)
        assert _engine(emu, st.client_order_id, ad)["status"] == "OPEN"  # above the stop: nothing
        emu.set_quote(PID, 94.5, 94.7)
        f, = ad.fills(0)
        assert (f.side, f.qty, f.price, f.liquidity) == ("sell", 0.1, 94.5, "taker")
        done = ad.fetch_order_by_client_id(st.client_order_id)
        assert (done.status, done.type, done.stop_price, done.filled) == ("closed", "stop_limit", 95.0, 0.1)


@pytest.mark.parametrize("exchange", VENUES)
def test_gap_through_the_limit_rests_until_the_bid_comes_back_and_fills_at_the_limit(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(95.0, 94.0))
        emu.set_quote(PID, 90.0, 90.2)  # triggered, but the bid is under the limit
        assert ad.fills(0) == [] and _engine(emu, st.client_order_id, ad)["status"] == "OPEN"
        emu.set_quote(PID, 94.0, 94.2)
        f, = ad.fills(0)
        assert (f.price, f.liquidity) == (94.0, "maker")


@pytest.mark.parametrize("exchange", VENUES)
def test_a_low_of_the_price_path_triggers_though_the_close_stays_above(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
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


@pytest.mark.parametrize("exchange", VENUES)
def test_a_stop_that_would_trigger_at_once_is_refused(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        st = ad.create_order(stop_order(101.0, 100.0))
        assert st.status == "rejected" and REFUSED[exchange] in (st.reject_reason or "")
        assert ad.open_orders() == []


def test_binance_lists_the_stop_types_and_refuses_a_stop_loss_limit_without_its_mandatory_params():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        ad.markets()
        types = ad.client.markets[SYM]["info"]["orderTypes"]
        assert {"STOP_LOSS", "STOP_LOSS_LIMIT"} <= set(types)
        base = {"symbol": "BTCUSDC", "side": "SELL", "type": "STOP_LOSS_LIMIT", "quantity": "0.1", "price": "94",
                "stopPrice": "95", "timeInForce": "GTC"}
        for missing in ("stopPrice", "timeInForce", "price"):
            with pytest.raises(ccxt.BaseError, match=f"Mandatory parameter '{missing}'"):
                ad.client.privatePostOrder({k: v for k, v in base.items() if k != missing})
        assert emu.orders() == []
        # a STOP_LOSS (market once triggered) rests too, as the type listed
        raw = ad.client.privatePostOrder({k: v for k, v in base.items() if k not in ("price", "timeInForce")}
                                         | {"type": "STOP_LOSS"})
        assert (raw["type"], raw["stopPrice"], raw["status"], raw["isWorking"]) == ("STOP_LOSS", "95.0", "NEW", False)


def test_kraken_takes_the_trigger_in_price_and_the_limit_in_price2():
    with venue_emulator_and_adapter("kraken") as (emu, ad):
        emu.set_quote(PID, 100.0, 100.2)
        base = {"pair": "XBTUSDC", "type": "sell", "ordertype": "stop-loss-limit", "volume": "0.1", "price": "95"}
        with pytest.raises(ccxt.BaseError, match="EGeneral:Invalid arguments:price"):
            ad.client.privatePostAddOrder(base)  # no price2: no limit
        assert emu.orders() == []
        res = ad.client.privatePostAddOrder(base | {"price2": "94"})["result"]
        assert res["descr"]["order"] == "sell 0.10000000 XBTUSDC @ stop loss 95.0 -> limit 94.0"
        (txid,) = res["txid"]
        o = ad.client.privatePostQueryOrders({"txid": txid})["result"][txid]
        assert (o["descr"]["ordertype"], o["descr"]["price"], o["descr"]["price2"], o["status"]) == \
            ("stop-loss-limit", "95.0", "94.0", "open")
