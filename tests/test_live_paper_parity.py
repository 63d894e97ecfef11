"""Paper on the local emulator (exchange=local_sim) against the backtest over the very bars it
decided on: the same fills, limit orders included; and a restart of paper on a fresh local_sim
catches up at once and never stamps a fill before its decision bar."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.live import brokers
from engine.live.shadow import stored_market
from engine.live.store import StateStore
from engine.modes.live import open_session
from engine.modes.setup import load_rules
from engine.sim.settings import SimSettings
from tests.helpers.live import active_rules_dir, live_config, run_mode

LIMIT = "order: {type: limit, offset_bps: 3}"


def _limit_rules(tmp: Path) -> None:
    """The test rules with limit orders resting 3 bps from the decision's close."""
    path = active_rules_dir(tmp) / "execution.yaml"
    text = path.read_text()
    assert "order: {type: market}" in text
    path.write_text(text.replace("order: {type: market}", LIMIT))


def _fills_by_key(rows) -> dict:
    return {(int(r[0]), r[1], r[2]): tuple(r[3:]) for r in rows}


@pytest.mark.slow
def test_paper_on_the_emulator_fills_exactly_as_the_backtest_of_its_bars_limit_orders_included(tmp_path):
    _limit_rules(tmp_path)
    state = tmp_path / "state"
    run_mode("paper", state, tmp_path / "out", cycles=25, speed=60.0)
    cfg = live_config("paper", state)
    store = StateStore(state / "default-paper.sqlite")
    try:
        cycles = store.rows("SELECT t FROM cycles ORDER BY t")
        ts = [c["t"] for c in cycles]
        assert ts == list(range(ts[0], ts[-1] + 1)), "paper skipped a bar: the replay would decide on it"
        orders = store.rows("SELECT type, status FROM orders")
        paper = _fills_by_key(store.db.execute("SELECT t, symbol, side, qty, price, fee FROM fills").fetchall())
        market = stored_market(store)
        meta = store.get("meta", "session")
    finally:
        store.close()
    assert orders and {o["type"] for o in orders} == {"limit"}, "every order is placed as a limit order"
    assert {"filled", "canceled"} <= {o["status"] for o in orders}, "some limits fill, some are not reached"
    settings = dataclasses.replace(SimSettings.from_run_config(cfg), initial_cash=float(meta["initial_cash"]),
                                   start=ts[0], stop=ts[-1] + 2)
    res = run_backtest(prepare(market, load_rules(cfg)), settings)
    back = {(f.t, market.symbols[f.symbol_idx], f.side): (f.qty, f.price, f.fee) for f in res.fills}
    assert paper, "the test strategy trades within 25 bars"
    assert paper == back  # exact: the same fill model on the same bars


@pytest.mark.slow
def test_a_paper_restart_on_a_fresh_local_sim_catches_up_and_fills_after_the_decision_bar(tmp_path, monkeypatch):
    """Killed after recording a cycle's orders; restarted on a new in-process emulator (which starts its
    market afresh): the session resumes at the account's newest bar instead of idling until the fresh
    market's clock gets there, and the recorded orders fill in their decision's next bar, never earlier."""

    class _Crash(BaseException):
        pass

    def die_before_submitting(self, ctx, t, orders, d):
        if orders:
            raise _Crash()

    state = tmp_path / "state"
    monkeypatch.setattr(brokers.SimulatedBroker, "submit", die_before_submitting)
    s = open_session(live_config("paper", state, cycles=200), "paper")
    with pytest.raises(_Crash):
        s.run()
    s.adapter.close()
    s.store.close()
    monkeypatch.undo()

    s = open_session(live_config("paper", state, cycles=3), "paper")
    try:
        s.start()
        newest = s.store.last_bar_time()
        assert s.clock.now_ms() >= newest + s.tf_ms  # resumed at the account's bar, not 'history' bars earlier
        s.store.close()
        s.adapter.close()
        s = open_session(live_config("paper", state, cycles=3), "paper")
        summary = s.run()
    finally:
        s.adapter.close()
        s.store.close()
    assert summary["cycles"] == 3
    db = StateStore(state / "default-paper.sqlite")
    try:
        rows = db.rows("SELECT f.t AS fill_t, f.time_ms, o.t AS decided, b.time_ms AS bar_ms, o.status "
                       "FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
                       "JOIN bars b ON b.t = o.t")
        resent = db.rows("SELECT COUNT(*) AS n FROM alerts WHERE kind='resend'")[0]["n"]
        bars = [r["time_ms"] for r in db.rows("SELECT time_ms FROM bars ORDER BY t")]
    finally:
        db.close()
    assert resent >= 1 and rows
    for r in rows:  # each fill in the bar after its decision, stamped when that bar opened (its decision's close)
        assert r["fill_t"] == r["decided"] + 1
        assert r["time_ms"] == r["bar_ms"] + 60_000
    assert all(b - a == 60_000 for a, b in zip(bars, bars[1:])), "the resumed account's bars are contiguous"
