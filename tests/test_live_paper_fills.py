"""Paper's simulated broker fills with the backtest's fill model, from the stored bars: the same
fills, to the last bit, as ``SimBroker`` on the same bars (market and limit orders, volume
participation, fee tiers, slippage noise, buys scaled to the cash), never stamped before the
decision bar has closed, also for an order recorded before a restart."""
from __future__ import annotations

import numpy as np
import pytest

from engine.live import feed
from engine.live.brokers import SimulatedBroker
from engine.live.store import StateStore
from engine.market.data import SymbolInfo
from engine.sim.costs import FeeSchedule, SlippageModel
from engine.sim.fills import SimBroker
from engine.sim.settings import SimSettings
from tests.helpers.live import broker_context

SYMS = ["A/USDC", "B/USDC", "C/USDC", "D/USDC", "E/USDC", "F/USDC"]
TIERS = ({"min_volume_usd": 0, "maker_bps": 20, "taker_bps": 100},
         {"min_volume_usd": 5_000, "maker_bps": 10, "taker_bps": 50})
COSTS = SimSettings(initial_cash=9_000.0, fee_tiers=TIERS, slippage=SlippageModel(noise_bps=5.0),
                    max_participation=0.5, seed=11)
TIMES = np.array([0, 60_000, 120_000], dtype=np.int64)


def _bars() -> np.ndarray:
    """(3, 6, N): open high low close volume spread; bar 2 is the fill bar."""
    rows = np.empty((3, 6, len(SYMS)))
    for t in range(3):
        o = 100.0 + t
        rows[t] = np.array([[o] * 6, [o + 2] * 6, [o - 2] * 6, [o + 0.5] * 6, [80.0] * 6, [12.0] * 6])
    rows[2, 4, 3] = 30.0  # D: thin bar, the participation cap cuts its buy
    return rows


def _market(store: StateStore):
    info = tuple(SymbolInfo(s, "other", 0.01, 1e-8, 0.0) for s in SYMS)
    return feed.panel(store, "1m", SYMS, info, "test")


def _record(store: StateStore, t: int, orders: list[tuple]) -> None:
    with store.txn() as db:
        for cid, sym, side, qty, kind, limit in orders:
            db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, rule, status) "
                       "VALUES (?,?,?,?,?,?,?,?,'new')", (cid, t, sym, side, qty, kind, limit, "r"))


ORDERS = [("c1", "A/USDC", "sell", 60.0, "market", None), ("c2", "B/USDC", "sell", 60.0, "market", None),
          ("c3", "C/USDC", "buy", 60.0, "market", None), ("c4", "D/USDC", "buy", 60.0, "market", None),
          ("c5", "E/USDC", "buy", 10.0, "limit", 100.5),  # bar 2 low 100 < 100.5: rests and fills at its limit
          ("c6", "F/USDC", "buy", 10.0, "limit", 99.0)]  # bar 2 never trades through 99: cancelled


def _backtest_fills(market):
    """What the backtest's broker does with the same decision in the same bar."""
    from types import SimpleNamespace

    from engine.cycle.portfolio import Portfolio
    n = len(SYMS)
    sell, buy, limit = np.zeros(n), np.zeros(n), np.full(n, np.nan)
    for _, sym, side, qty, kind, lim in ORDERS:
        j = SYMS.index(sym)
        (buy if side == "buy" else sell)[j] = qty
        if kind == "limit":
            limit[j] = lim
    d = SimpleNamespace(sell_qty=sell, buy_qty=buy, exit_rule=["r"] * n, entry_rule=["r"] * n, limit_price=limit)
    pf = Portfolio.empty(n, COSTS.initial_cash)
    pf.qty[:2] = 60.0
    pf.entry_price[:2] = 90.0
    fees = FeeSchedule.from_config({"tiers": list(TIERS)})
    sim = SimBroker(market, fees, COSTS.slippage, np.full(n, 1e-8), COSTS.max_participation,
                    np.random.default_rng(COSTS.seed + 2))
    return sim.execute(d, 2, pf), pf


def _paper(tmp_path, restart: bool):
    store = StateStore(tmp_path / f"paper-{restart}.sqlite")
    with store.txn() as db:
        store.append_bars(db, TIMES[:2], _bars()[:2])
    _record(store, 1, ORDERS)
    # the decision bar (1) has closed: the clock is at its close (plus a little)
    ctx = broker_context(store, SYMS, cash=COSTS.initial_cash, costs=COSTS, now_ms=int(TIMES[1]) + 60_000 + 5)
    ctx.book.pf.qty[:2] = 60.0
    ctx.book.pf.entry_price[:2] = 90.0
    broker = SimulatedBroker()
    if restart:  # recorded, then the process died before submitting: the restart submits it
        broker.reconcile(ctx)
    else:
        broker.submit(ctx, 1, [], None)
        with store.txn() as db:
            for o in ORDERS:
                store.update_order(db, o[0], status="open")
    broker.settle(ctx, _market(store), 2)  # bar 2 not stored yet: nothing can fill
    assert store.rows("SELECT COUNT(*) AS n FROM fills")[0]["n"] == 0
    with store.txn() as db:
        store.append_bars(db, TIMES[2:], _bars()[2:])
    market = _market(store)
    broker.settle(ctx, market, 2)
    return store, ctx, market


@pytest.mark.parametrize("restart", [False, True])
def test_paper_fills_exactly_as_the_backtest_in_the_bar_after_the_decision(tmp_path, restart):
    store, ctx, market = _paper(tmp_path, restart)
    expected, pf = _backtest_fills(market)
    got = store.rows("SELECT symbol, side, qty, price, fee, slippage, t, time_ms FROM fills ORDER BY rowid")
    assert [(r["symbol"], r["side"], r["qty"], r["price"], r["fee"], r["slippage"]) for r in got] == \
        [(SYMS[f.symbol_idx], f.side, f.qty, f.price, f.fee, f.slippage) for f in expected]
    assert {r["symbol"] for r in got} == {"A/USDC", "B/USDC", "C/USDC", "D/USDC", "E/USDC"}
    # stamped with the fill bar (2) and its open time: after the decision bar (1) closed, never before
    assert all(r["t"] == 2 and r["time_ms"] == TIMES[2] >= TIMES[1] + 60_000 for r in got)
    assert ctx.book.pf.cash == pf.cash and ctx.book.pf.qty.tolist() == pf.qty.tolist()
    status = dict(store.db.execute("SELECT client_order_id, status FROM orders").fetchall())
    assert status == {"c1": "filled", "c2": "filled", "c3": "filled", "c4": "filled", "c5": "filled",
                      "c6": "canceled"}
    e = store.rows("SELECT price, fee, qty FROM fills WHERE symbol='E/USDC'")[0]
    assert e["price"] == 100.5  # a resting limit fills at its limit ...
    # ... with the maker fee of the tier the bar's earlier buys reached (10 bps after 5,000 of volume)
    assert e["fee"] == pytest.approx(e["qty"] * 100.5 * 10 / 1e4)
    store.close()


def test_a_paper_order_recorded_before_a_late_restart_is_abandoned_not_filled_in_hindsight(tmp_path):
    store = StateStore(tmp_path / "late.sqlite")
    with store.txn() as db:
        store.append_bars(db, TIMES, _bars())
    _record(store, 1, ORDERS[:1])
    late = int(TIMES[1]) + 60_000 + 10 * 60_000  # ten bars after the decision bar closed
    ctx = broker_context(store, SYMS, costs=COSTS, now_ms=late)
    SimulatedBroker().reconcile(ctx)
    SimulatedBroker().settle(ctx, _market(store), 2)
    assert store.rows("SELECT status FROM orders")[0]["status"] == "abandoned"
    assert store.rows("SELECT COUNT(*) AS n FROM fills")[0]["n"] == 0
    store.close()
