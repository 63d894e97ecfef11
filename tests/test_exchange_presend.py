"""Orders the exchange would refuse are refused before sending, in one line naming the exchange,
the symbol, the value found and what is expected: halted, cancel-only, post-only and limit-only
products; sizes under the minimum or off the increment; notionals under the minimum. Nothing
reaches the exchange; the live broker records the refusal on the order row and alerts it."""
from __future__ import annotations

import logging
import math

import pytest

from engine.exchange import ExchangeAdapter, MarketInfo, OrderRequest, make_client_order_id
from engine.exchange.presend import refusal
from engine.live.exchange_broker import ExchangeBroker
from engine.live.port import OrderTicket
from engine.live.store import StateStore, now_ms
from tests.helpers.exchange import emulator_and_adapter, sim_config
from tests.helpers.live import broker_context


def _market(**changes) -> MarketInfo:
    base = dict(symbol="ETH/USDC", exchange_id="ETHUSDC", base="ETH", quote="USDC", price_increment=0.01,
                size_increment=0.0001, min_size=0.001, min_notional=5.0, status="online", trading_disabled=False,
                cancel_only=False, limit_only=False, post_only=False)
    return MarketInfo(**{**base, **changes})


def _order(type_="limit", qty=0.01, price=2_000.0, side="buy", post_only=False) -> OrderRequest:
    return OrderRequest("rb-x", "ETH/USDC", side, type_, qty, price if type_ == "limit" else None, post_only=post_only)


@pytest.mark.parametrize("market,order,price,expected", [
    (dict(status="offline"), {}, 2_000.0,
     "binance: ETH/USDC is halted (status 'offline'); found a buy limit order, expected none until it trades again"),
    (dict(trading_disabled=True), {}, 2_000.0, "binance: ETH/USDC is halted (status 'online', trading disabled)"),
    (dict(cancel_only=True), {"side": "sell"}, 2_000.0,
     "binance: ETH/USDC is cancel-only; found a new sell limit order, expected none until it trades again"),
    (dict(post_only=True), {"type_": "market"}, 2_000.0,
     "binance: ETH/USDC is post-only; found a buy market order, expected a post-only limit order"),
    (dict(post_only=True), {}, 2_000.0,
     "binance: ETH/USDC is post-only; found a buy limit order (not post-only), expected a post-only limit order"),
    (dict(limit_only=True), {"type_": "market"}, 2_000.0,
     "binance: ETH/USDC is limit-only; found a buy market order, expected a limit order"),
    ({}, {"qty": 0.0005}, 2_000.0, "binance: ETH/USDC order size 0.0005 ETH is under the minimum size 0.001 ETH"),
    ({}, {"qty": 0.00123}, 2_000.0,
     "binance: ETH/USDC order size 0.00123 ETH is not a multiple of the size increment 0.0001; expected e.g. 0.0012"),
    ({}, {"price": 2_000.005}, 2_000.005,
     "binance: ETH/USDC limit price 2000.005 is not a multiple of the price increment 0.01; expected e.g. 2000"),
    ({}, {"qty": 0.002}, 2_000.0,
     "binance: ETH/USDC order notional 4 USDC (0.002 x 2000) is under the minimum notional 5 USDC"),
    ({}, {"type_": "market", "qty": 0.002}, 1_999.0,  # a market order: at the touch
     "binance: ETH/USDC order notional 3.998 USDC (0.002 x 1999) is under the minimum notional 5 USDC"),
])
def test_each_refusal_names_the_symbol_what_was_found_and_what_is_expected(market, order, price, expected):
    why = refusal(_order(**order), _market(**market), "binance", price)
    assert why is not None and why.startswith(expected), why


def test_orders_that_fit_pass_and_a_post_only_limit_passes_a_post_only_product():
    assert refusal(_order(qty=0.0025), _market(), "kraken", 2_000.0) is None  # 5.0 USDC: at the minimum
    assert refusal(_order(post_only=True), _market(post_only=True), "kraken", 2_000.0) is None
    assert refusal(_order(type_="market", qty=0.01), _market(), "kraken", None) is None  # no quote: not guessed
    assert refusal(_order(qty=0.3 * 3), _market(size_increment=0.1, min_size=0.1), "kraken", 2_000.0) is None


def _creates(emu) -> int:
    return sum(r[1] == "create_order" for r in emu.requests)


@pytest.mark.parametrize("profile,product", [("kraken_sim", "ETH-USDC"), ("binance_sim", "ETH-USDC")])
def test_a_cancel_only_product_is_refused_before_sending_through_each_ccxt_class(profile, product, caplog):
    with ExchangeAdapter(sim_config(profile)) as ad:
        ad.markets()
        emu = ad.emulator
        emu.set_product_status(product, cancel_only=True)
        ad.markets(reload=True)  # the product's status as the exchange lists it now
        cid = make_client_order_id("t", 1, "ETH/USDC", "buy", 0)
        with caplog.at_level(logging.WARNING, logger="rulebook.exchange"):
            st = ad.create_order(OrderRequest(cid, "ETH/USDC", "buy", "market", 0.1))
        sent = _creates(emu)
    exchange = profile.split("_")[0]
    # Kraken lists the pair as "cancel_only"; Binance has no such status: its symbol is in BREAK
    found = "is cancel-only" if exchange == "kraken" else "is halted (status 'break', trading disabled)"
    assert st.status == "rejected" and st.reject_reason.startswith(f"refused before sending: {exchange}: ETH/USDC {found}")
    assert sent == 0
    assert f"{exchange}: ETH/USDC {found}" in caplog.text


def test_an_order_under_the_minimum_notional_is_refused_by_binance_before_sending():
    with ExchangeAdapter(sim_config("binance_sim")) as ad:
        m = ad.markets()["BTC/USDC"]
        qty = math.ceil(m.min_size / m.size_increment) * m.size_increment
        price = round(math.floor(0.5 * m.min_notional / qty / m.price_increment) * m.price_increment, 8)
        st = ad.create_order(OrderRequest(make_client_order_id("t", 1, "BTC/USDC", "buy", 1), "BTC/USDC", "buy",
                                          "limit", qty, price))
        sent = _creates(ad.emulator)
    assert m.min_notional > 0 and sent == 0
    assert st.status == "rejected" and "is under the minimum notional" in st.reject_reason
    assert f"binance: BTC/USDC order notional {qty * price:.8g} USDC" in st.reject_reason


def test_the_live_broker_records_a_pre_send_refusal_on_the_order_and_alerts_it(tmp_path):
    store = StateStore(tmp_path / "live.sqlite")
    store.put("meta", "session", {"created_wall_ms": now_ms()})
    with emulator_and_adapter(verify_keys=False) as (emu, adapter):
        emu.set_product_status("SOL-USDC", post_only=True)
        ctx = broker_context(store, ["SOL/USDC"], cash=10_000.0)
        o = OrderTicket(make_client_order_id("acct", 60_000, "SOL/USDC", "buy", 0), 5, "SOL/USDC", "buy", 1.0,
                        "market", None, "entry")
        with store.txn() as db:
            db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, rule, status, "
                       "created_wall_ms, updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,'new',?,?)",
                       (o.client_order_id, o.t, o.symbol, o.side, o.qty, o.type, o.limit_price, o.rule, now_ms(), now_ms()))
        ExchangeBroker(adapter).submit(ctx, 5, [o], None)
        sent = _creates(emu)
    (row,) = store.rows("SELECT status, reason, exchange_order_id FROM orders")
    store.close()
    assert sent == 0
    assert (row["status"], row["exchange_order_id"]) == ("rejected", None)
    expected = "coinbase: SOL/USDC is post-only; found a buy market order, expected a post-only limit order"
    assert row["reason"] == f"refused before sending: {expected}"
    assert [a[:2] for a in ctx.alerts] == [("warning", "order_rejected")] and expected in ctx.alerts[0][2]
