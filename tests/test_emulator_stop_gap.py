"""The emulator's price gap (``SimMarket.gap``; the ``gap`` price fault, engine/exchange/emulator/
faults.py): a product's path from the next step on scaled down, so that bar opens and trades through
a resting stop and its limit. The venue triggers the stop and it rests unfilled (a Binance OCO's stop
leg too, its take-profit leg expired; a Coinbase bracket as its stop-limit 5% under its trigger),
through each venue's real ccxt class."""
from __future__ import annotations

import numpy as np
import pytest

from engine.exchange import OcoRequest, OrderRequest, make_client_order_id
from engine.exchange.emulator.faults import FaultPlan
from engine.exchange.emulator.market import SimMarket
from tests.helpers.exchange import market_order, venue_emulator_and_adapter

SYM, PID = "BTC/USDC", "BTC-USDC"
VENUES = ["coinbase", "kraken", "binance"]


def _cid(seq: int) -> str:
    return make_client_order_id("gap", 1_700_000_000_000, SYM, "sell", seq)


def test_a_gap_scales_the_path_from_the_next_step_on_and_never_a_served_step():
    m, same = SimMarket.generate(seed=3, n_products=2), SimMarket.generate(seed=3, n_products=2)
    before = {k: getattr(m, k).copy() for k in ("open", "high", "low", "close", "volume")}
    i = m.index
    assert m.gap("BTC-USDC", 0.1) == i + 1 == same.gap("BTC-USDC", 0.1)
    for k, a in before.items():
        got = getattr(m, k)
        assert np.array_equal(got[: i + 1], a[: i + 1])  # served: as they were
        assert np.array_equal(got[i + 1:, 1], a[i + 1:, 1])  # another product: untouched
        assert np.array_equal(got, getattr(same, k))  # deterministic
    for k in ("open", "high", "low", "close"):
        assert np.allclose(getattr(m, k)[i + 1:, 0], before[k][i + 1:, 0] * 0.9)
    assert np.array_equal(m.volume, before["volume"])
    # the next bar opens 10% under the last close: nothing traded in between
    assert m.open[i + 1, 0] == pytest.approx(m.close[i, 0] * 0.9) and m.high[i + 1, 0] < m.close[i, 0] * 0.91
    m.advance()
    assert m.quote("BTC-USDC")[0] < before["close"][i, 0] * 0.91


def test_a_gap_never_rewrites_the_callers_arrays_and_takes_a_fraction_in_0_1():
    src = SimMarket.generate(seed=3, n_products=1)
    m = SimMarket(list(src.products.values()), src.times_ms, src.open, src.high, src.low, src.close, src.volume,
                  src.index)
    close = src.close.copy()
    m.gap("BTC-USDC", 0.2)
    assert np.array_equal(src.close, close)  # a replayed MarketData's panel stays its own
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"fraction .* must be in \(0, 1\)"):
            m.gap("BTC-USDC", bad)


def test_the_gap_fault_is_a_price_fault_no_request_takes():
    plan = FaultPlan()
    with pytest.raises(ValueError, match="price fault"):
        plan.add("gap", endpoint="create_order")
    plan.add("gap", fraction=0.2)
    assert plan.take("create_order") is None and plan.take("best_bid_ask") is None
    f = plan.take_price("gap")
    assert (f.kind, f.params) == ("gap", {"fraction": 0.2}) and plan.fired == [("gap", "market")]
    assert plan.take_price("gap") is None


@pytest.mark.parametrize("exchange", VENUES)
def test_a_stop_limit_the_price_gaps_through_triggers_and_rests_unfilled(exchange):
    with venue_emulator_and_adapter(exchange) as (emu, ad):
        emu.faults.add("gap", fraction=0.1)
        ad.create_order(market_order(SYM, "buy", 0.01, seq=9, run_id="gap"))  # not a stop: the fault waits
        assert emu.faults.pending() == 1
        bid = emu.market.quote(PID)[0]
        stop, limit = round(bid * 0.99, 2), round(bid * 0.98, 2)
        st = ad.create_order(OrderRequest(_cid(0), SYM, "sell", "stop_limit", 0.1, limit, stop_price=stop))
        assert st.status == "open" and emu.faults.pending() == 0  # it rests: the path gaps from the next step
        emu.advance()
        now = emu.market.quote(PID)[0]
        assert now < limit < stop
        o = ad.fetch_order_by_client_id(st.client_order_id)
        engine = next(x for x in emu.book.orders.values() if x.stop_price == stop)
        assert engine.triggered and (o.status, o.filled) == ("open", 0.0)  # triggered, cannot fill
        assert [x.client_order_id for x in ad.open_orders() if x.type == "stop_limit"] == [st.client_order_id]
        assert [f.side for f in ad.fills(0)] == ["buy"]  # the stop sold nothing
        assert ad.cancel_order(st.client_order_id).status == "canceled"


def test_a_binance_oco_the_price_gaps_through_expires_its_take_profit_and_its_stop_leg_rests_unfilled():
    with venue_emulator_and_adapter("binance") as (emu, ad):
        emu.faults.add("gap", fraction=0.1)
        bid = emu.market.quote(PID)[0]
        stop, limit, take = round(bid * 0.99, 2), round(bid * 0.98, 2), round(bid * 1.02, 2)
        ad.create_oco(OcoRequest(_cid(1), SYM, 0.1, _cid(2), take, _cid(3), stop, limit))
        emu.advance()
        stop_leg, take_leg = (ad.fetch_order_by_client_id(c, SYM) for c in (_cid(3), _cid(2)))
        assert (stop_leg.status, stop_leg.filled, take_leg.status) == ("open", 0.0, "canceled")  # (EXPIRED)
        assert sorted(o["status"] for o in emu.orders()) == ["EXPIRED", "OPEN"]
        assert ad.fills(0) == []


def test_a_coinbase_bracket_the_price_gaps_through_rests_as_its_stop_limit_unfilled():
    with venue_emulator_and_adapter("coinbase") as (emu, ad):
        emu.faults.add("gap", fraction=0.1)
        bid = emu.market.quote(PID)[0]
        stop, take = round(bid * 0.99, 2), round(bid * 1.02, 2)
        st = ad.create_order(OrderRequest(_cid(4), SYM, "sell", "bracket", 0.1, take, stop_price=stop))
        emu.advance()
        assert emu.market.quote(PID)[0] < stop * 0.95  # under its triggered stop-limit
        o = ad.fetch_order_by_client_id(st.client_order_id)
        (engine,) = emu.book.orders.values()
        assert engine.triggered and (o.status, o.filled) == ("open", 0.0)
        assert ad.fills(0) == []
