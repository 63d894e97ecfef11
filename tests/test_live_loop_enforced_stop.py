"""A live session on a venue that takes no stop orders (``exchange.protection_orders: []``, as
Kraken's and Binance's profiles): the loop enforces the strategy's ``stop_loss`` itself. It says
so at start (one WARNING line naming the exchange and the protections it enforces); a position
whose bar falls through its stop is sold at market at that bar's cycle; no stop order ever
reaches the exchange (the in-process Coinbase emulator, step clock)."""
from __future__ import annotations

import json
import logging

import numpy as np

from engine.live.shadow import stored_market
from engine.modes.live import open_session
from tests.helpers.live import live_overrides, with_protect
from tests.helpers.runs import compose_config

STOP_LOSS = 0.003
NO_STOPS = ("exchange.protection_orders=[]", "live.burn_in.require_paper=false", "live.burn_in.cycles=0")


def _live_session(tmp, cycles: int = 20):
    """A live session (step clock) on exchange=local_sim with no stop orders; its emulator's orders
    and its state file's fills, orders and bars, read before the session closes."""
    with_protect(tmp, f"protect:\n  stop_loss: {STOP_LOSS}\n")
    s = open_session(compose_config(live_overrides("live", tmp / "state", *NO_STOPS, cycles=cycles, speed=None)), "live")
    try:
        summary = s.run()
        return (summary, s.adapter.emulator.orders(),
                s.store.rows("SELECT t, symbol, side, price, rule, client_order_id FROM fills ORDER BY t, fill_id"),
                s.store.rows("SELECT t, symbol, side, type, rule, status, client_order_id FROM orders"),
                stored_market(s.store))
    finally:
        s.adapter.close()
        s.store.close()


def test_the_loop_sells_a_position_through_its_stop_at_the_next_cycle_and_no_stop_rests(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="rulebook.live.alerts"):
        summary, emulated, fills, orders, market = _live_session(tmp_path)
    assert summary == {"cycles": 20, "status": "ended"}

    # said at start, once: the exchange, and that the loop enforces the stop
    said = [(r.levelno, json.loads(r.getMessage())) for r in caplog.records if r.name == "rulebook.live.alerts"]
    said = [(level, a) for level, a in said if a["kind"] == "protections"]
    assert len(said) == 1
    logged_at, alert = said[0]
    assert logged_at == logging.WARNING and alert["level"] == "warning" and alert["t"] is None
    assert alert["message"] == ("stop_loss enforced by the loop at each cycle on exchange local_sim "
                                  "(protection_orders: []): checked at each bar's close and sold at market, "
                                  "only while the loop runs")

    # a position opened, then sold by the loop's stop
    (stop_fill,) = [f for f in fills if f["rule"] == "protect:stop_loss"]
    sym = stop_fill["symbol"]
    entry = [f for f in fills if f["symbol"] == sym and f["side"] == "buy" and f["t"] < stop_fill["t"]][-1]
    j = market.symbols.index(sym)
    level = entry["price"] * (1.0 - STOP_LOSS)  # fixed at entry from its fill price, as in a backtest
    crossed = [t for t in range(entry["t"], market.n_bars) if market.low[t, j] <= level]
    assert crossed, "the test needs a bar through the stop"
    (sell,) = [o for o in orders if o["client_order_id"] == stop_fill["client_order_id"]]
    # decided at the close of the first bar through the stop (the cycle after it), sent at market,
    # filled in the bar after it
    assert (sell["t"], sell["side"], sell["type"], sell["status"]) == (crossed[0], "sell", "market", "filled")
    assert stop_fill["t"] == crossed[0] + 1
    assert np.all(market.low[entry["t"]:crossed[0], j] > level)  # not before: no early exit either

    # no stop order was ever placed: neither recorded nor at the emulator
    assert not [o for o in orders if o["type"] != "market"]
    assert emulated and {k for o in emulated for k in o["order_configuration"]} == {"market_market_ioc"}
    assert {o["client_order_id"] for o in emulated} == {o["client_order_id"] for o in orders}
