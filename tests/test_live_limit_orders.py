"""A limit order in live, against the Coinbase emulator on 127.0.0.1 through the real adapter
(ccxt's coinbase class): placed as a resting limit order with our client order id at the decided
limit, filled as maker when the market comes to it, and cancelled once it has had its bar."""
from __future__ import annotations

import pytest

from engine.exchange import make_client_order_id
from engine.live.exchange_broker import ExchangeBroker, limit_for_exchange
from engine.live.port import OrderTicket
from engine.live.store import StateStore, now_ms
from tests.helpers.exchange import emulator_and_adapter
from tests.helpers.live import broker_context

SYMS = ["BTC/USDC", "ETH/USDC"]


def _record(store: StateStore, o: OrderTicket) -> None:
    with store.txn() as db:
        db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, rule, status, "
                   "created_wall_ms, updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,'new',?,?)",
                   (o.client_order_id, o.t, o.symbol, o.side, o.qty, o.type, o.limit_price, o.rule, now_ms(), now_ms()))


def test_the_limit_price_goes_on_the_exchanges_grid_never_worse_than_decided():
    assert limit_for_exchange(100.0049, 0.01, "buy") == 100.0
    assert limit_for_exchange(100.0049, 0.01, "sell") == 100.01
    assert limit_for_exchange(100.01, 0.01, "sell") == 100.01


def test_a_live_limit_order_rests_fills_as_maker_and_is_cancelled_after_its_bar(tmp_path):
    store = StateStore(tmp_path / "live.sqlite")
    store.put("meta", "session", {"created_wall_ms": now_ms()})
    with emulator_and_adapter(verify_keys=False) as (emu, adapter):
        emu.set_quote("BTC-USDC", 59_990.0, 60_010.0)
        emu.set_quote("ETH-USDC", 2_999.0, 3_001.0)
        ctx = broker_context(store, SYMS, cash=100_000.0)
        broker = ExchangeBroker(adapter)
        fills_at = 59_950.004  # decided below the ask; the exchange gets 59,950.00 (buys round down)
        never = 2_900.0  # far below ETH's ask: never reached in its bar
        orders = [OrderTicket(make_client_order_id("acct-live-1", 60_000, s, "buy", 0), 5, s, "buy", q, "limit", px, "dip")
                  for s, q, px in (("BTC/USDC", 0.01, fills_at), ("ETH/USDC", 0.1, never))]
        for o in orders:
            _record(store, o)
        broker.submit(ctx, 5, orders, None)

        at_exchange = {o["client_order_id"]: o for o in emu.orders()}
        assert set(at_exchange) == {o.client_order_id for o in orders}  # our client ids
        for o in orders:
            e = at_exchange[o.client_order_id]
            assert (e["order_type"], e["status"]) == ("LIMIT", "OPEN")  # resting, not a market order
        assert float(at_exchange[orders[0].client_order_id]["order_configuration"]["limit_limit_gtc"]["limit_price"]) \
            == 59_950.0
        assert [r["status"] for r in store.rows("SELECT status FROM orders ORDER BY symbol")] == ["open", "open"]
        assert store.rows("SELECT COUNT(*) AS n FROM fills")[0]["n"] == 0

        # during its bar the market comes down through the BTC limit: it fills as maker, at its limit
        emu.set_quote("BTC-USDC", 59_940.0, 59_949.0)
        broker.settle(ctx, None, 6)  # the next cycle: fills adopted, the unfilled limit cancelled
        at_exchange = {o["client_order_id"]: o for o in emu.orders()}
        assert at_exchange[orders[0].client_order_id]["status"] == "FILLED"
        assert at_exchange[orders[1].client_order_id]["status"] == "CANCELLED"  # good for one bar
    status = dict(store.db.execute("SELECT symbol, status FROM orders").fetchall())
    assert status == {"BTC/USDC": "filled", "ETH/USDC": "canceled"}
    (f,) = store.rows("SELECT symbol, side, qty, price, fee, t FROM fills")
    assert (f["symbol"], f["side"], f["qty"], f["price"], f["t"]) == ("BTC/USDC", "buy", 0.01, 59_950.0, 6)
    assert f["fee"] == pytest.approx(0.01 * 59_950.0 * 0.004)  # the emulator's maker rate, not its taker 0.006
    assert ctx.book.pf.qty.tolist() == [0.01, 0.0]
    store.close()
