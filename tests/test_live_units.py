"""Settings, state store, portfolio state and hot reload, without an exchange."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cycle.decide import HaltState
from engine.cycle.portfolio import Portfolio
from engine.live import pstate
from engine.live.errors import LiveError
from engine.live.loop import _trim_unserved
from engine.live.reload import RuleReloader
from engine.live.safeguards import burn_in_scale, kill_switch_on, set_kill
from engine.live.settings import BurnIn, LiveSettings
from engine.live.store import StateStore
from engine.modes.setup import load_rules
from tests.helpers.live import active_rules_dir, live_config


def test_settings_reject_unknown_keys_and_unbounded_runs():
    with pytest.raises(LiveError, match=r"live.max_cycle: unknown key; did you mean 'max_cycles'"):
        LiveSettings.from_mapping({"max_cycle": 3})
    with pytest.raises(LiveError, match="cycle limit or an end time"):
        LiveSettings.from_mapping({"max_cycles": None, "end_time": None})
    with pytest.raises(LiveError, match="open_orders_on_start is 'forget'"):
        LiveSettings.from_mapping({"open_orders_on_start": "forget"})
    s = LiveSettings.from_mapping({"account": "ops-1", "state_dir": "/tmp/x", "burn_in": {"cycles": 5}})
    assert s.state_path("paper").name == "ops-1-paper.sqlite" and s.state_path("live").name == "ops-1-live.sqlite"
    assert s.burn_in.cycles == 5


def test_store_step_is_atomic(tmp_path):
    st = StateStore(tmp_path / "a.sqlite")
    with pytest.raises(RuntimeError):
        with st.txn() as db:
            st.put("state", "x", 1, db)
            raise RuntimeError("crash mid-step")
    assert st.get("state", "x") is None
    with st.txn() as db:
        st.append_bars(db, np.array([0, 60_000]), np.arange(2 * 6 * 3, dtype=float).reshape(2, 6, 3))
    times, data = st.bars(3)
    assert times.tolist() == [0, 60_000] and data[1, 5, 2] == 35.0
    st.close()


def test_portfolio_state_round_trips_exactly():
    pf = Portfolio.empty(3, 1000.0)
    pstate.apply_fill(pf, 1, "buy", 0.5, 101.25, 0.3, 7, "golden_cross", 1e-8)
    pf.mark(np.array([1.0, 102.0, 3.0]), 19000)
    back, halts = pstate.load(pstate.dump(pf, HaltState({"daily_loss": 31})))
    assert back.cash == pf.cash and back.qty.tolist() == pf.qty.tolist() and back.entry_rule == pf.entry_rule
    assert np.array_equal(back.entry_price, pf.entry_price, equal_nan=True) and halts.until == {"daily_loss": 31}
    pstate.apply_fill(pf, 1, "sell", 0.5, 100.0, 0.3, 9, "death_cross", 1e-8)
    assert pf.qty[1] == 0 and pf.entry_bar[1] == -1


def test_unserved_trailing_bars_are_not_stored_as_gaps():
    ohlcv = np.full((3, 5, 2), np.nan)
    ohlcv[0, :, 0] = 1.0
    ohlcv[1, :, 1] = 1.0
    times, kept = _trim_unserved(np.array([0, 1, 2]), ohlcv)
    assert times.tolist() == [0, 1] and kept.shape[0] == 2


def test_burn_in_and_kill_switch(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    assert burn_in_scale(BurnIn(cycles=2, cap_scale=0.5, max_order_notional=50), st, 0) == (0.5, 50)
    st.db.execute("INSERT INTO cycles(t, time_ms, status) VALUES (1, 0, 'done'), (2, 60000, 'done')")
    assert burn_in_scale(BurnIn(cycles=2), st, 120_000)[0] == 1.0
    assert burn_in_scale(BurnIn(cycles=0, days=1), st, 120_000)[0] < 1.0
    s = LiveSettings.from_mapping({"kill_switch_file": str(tmp_path / "KILL")})
    assert not kill_switch_on(s, st)
    (tmp_path / "KILL").touch()
    assert kill_switch_on(s, st)
    set_kill(st, True)
    assert kill_switch_on(LiveSettings(), st)
    st.close()


def test_hot_reload_takes_valid_edits_and_keeps_rules_on_broken_ones(tmp_path):
    active_rules_dir(tmp_path)
    cfg = live_config("paper", tmp_path / "state")
    r = RuleReloader(cfg, load_rules)
    assert r.check() == ("same", {}, None)
    path = tmp_path / "rules" / "strategies" / "sma_cross.yaml"
    good = path.read_text()
    path.write_text(good.replace("stop_loss: 0.08", "stop_loss: 0.05"))
    status, changed, err = r.check()
    assert status == "loaded" and list(changed) == ["rules/strategies/sma_cross.yaml"]
    assert r.rules.strategy.params["stop_loss"] == 0.08  # the config's params override still wins
    before = r.rules
    path.write_text(good.replace("when: crossover(", "when: crossover_typo("))
    status, changed, err = r.check()
    assert status == "rejected" and "sma_cross.yaml" in err and r.rules is before
    assert r.check()[0] == "same"  # the same broken edit is reported once


def test_kill_command_sets_the_flag_the_loop_reads(tmp_path):
    from engine.live.__main__ import main
    path = tmp_path / "a-live.sqlite"
    StateStore(path).close()
    assert main(["kill", "--state", str(path)]) == 0
    st = StateStore(path)
    assert kill_switch_on(LiveSettings(), st)
    st.close()
    assert main(["resume", "--state", str(path)]) == 0
    st = StateStore(path)
    assert not kill_switch_on(LiveSettings(), st)
    st.close()


def test_hot_reload_of_a_file_saved_in_another_encoding_is_rejected_not_a_crash(tmp_path):
    """An editor saving a rule file as Latin-1 (a 'é' in a why: text) is a broken edit like any other."""
    active_rules_dir(tmp_path)
    cfg = live_config("paper", tmp_path / "state")
    r = RuleReloader(cfg, load_rules)
    path = tmp_path / "rules" / "strategies" / "sma_cross.yaml"
    before = r.rules
    path.write_bytes(path.read_bytes() + "# entrée rapide\n".encode("latin-1"))
    status, changed, err = r.check()
    assert status == "rejected" and list(changed) == ["rules/strategies/sma_cross.yaml"] and "sma_cross.yaml" in err
    assert r.rules is before and r.check()[0] == "same"


def test_burn_in_notional_cap_holds_without_a_scale(tmp_path):
    """live.burn_in.cap_scale=1 (no scaling) must still cap each entry at burn_in.max_order_notional."""
    from types import SimpleNamespace

    from engine.live.feed import QuoteSnapshot
    from engine.live.loop import Session
    st = StateStore(tmp_path / "s.sqlite")
    settings = LiveSettings.from_mapping({"burn_in": {"cycles": 10, "cap_scale": 1.0, "max_order_notional": 50.0}})
    mid = np.array([100.0, 20.0])
    from engine.modes import live_plan
    s = SimpleNamespace(settings=settings, store=st, plan=live_plan("live"), symbols=["A/USDC", "B/USDC"],
                        size_increment=np.array([1e-8, 1e-8]), times_ms_of=lambda t: 0,
                        quotes=QuoteSnapshot(mid, mid, mid, np.zeros(2), np.zeros(2)))
    d = SimpleNamespace(buy_qty=np.array([2.0, 1.0]), sell_qty=np.zeros(2))
    guarded, _ = Session._guard(s, d, 0, np.zeros(2), False)
    assert (guarded.buy_qty * mid).tolist() == pytest.approx([50.0, 20.0])
    assert d.buy_qty.tolist() == [2.0, 1.0]  # a new decision: the one decided is left as it was
    st.close()


def test_an_existing_account_refuses_a_changed_symbol_list(tmp_path):
    """live.symbols names what an account trades; a state file created for other symbols must not
    silently keep trading those."""
    from engine.modes.live import open_session
    s = open_session(live_config("paper", tmp_path / "state"), "paper")
    try:
        s.start()
        traded = list(s.symbols)
    finally:
        s.adapter.close()
        s.store.close()
    assert len(traded) > 1
    s = open_session(live_config("paper", tmp_path / "state", f"live.symbols=[{traded[-1]}]"), "paper")
    try:
        with pytest.raises(LiveError, match=rf"live.symbols.*{traded[-1]}.*{traded[0]}"):
            s.start()
    finally:
        s.adapter.close()
        s.store.close()


def test_a_paper_or_live_entry_counts_bars_held_like_the_backtest(tmp_path):
    """A decision at bar t fills in bar t+1 in a backtest (entry_bar = t+1, bars_held 0 at the next
    cycle); a live fill of the same decision (recorded with its fill bar t+1) must not make a position one bar older."""
    from types import SimpleNamespace

    from engine.live.exchange_broker import record_fill
    from engine.live.port import BrokerFill
    from engine.sim.costs import FeeSchedule, SlippageModel
    from engine.sim.fills import SimBroker
    from tests.helpers.factories import OHLCV, make_market
    from tests.helpers.live import broker_context
    market = make_market({"A/USDC": OHLCV.create_series(12), "B/USDC": OHLCV.create_series(12, seed=1)})
    t = 7
    back = Portfolio.empty(2, 10_000.0)
    d = SimpleNamespace(sell_qty=np.zeros(2), buy_qty=np.array([1.0, 0.0]), exit_rule=["", ""], entry_rule=["r", ""])
    SimBroker(market, FeeSchedule.from_config({"tiers": [{"min_volume_usd": 0, "maker_bps": 0, "taker_bps": 0}]}),
              SlippageModel("none"), np.full(2, 1e-8), 1.0).execute(d, t + 1, back)
    st = StateStore(tmp_path / "s.sqlite")
    ctx = broker_context(st, list(market.symbols))
    with st.txn() as db:
        record_fill(ctx, db, BrokerFill("f1", "cid", None, t + 1, "A/USDC", "buy", 1.0, 100.0, 0.0, 0.0, 0, "r"))
    assert back.entry_bar[0] == t + 1
    assert ctx.book.pf.entry_bar[0] == back.entry_bar[0]
    st.close()


def test_hot_reload_reports_a_broken_edit_again_after_it_was_reverted(tmp_path):
    """Broken edit (alert), reverted, later the same mistake again: that is a new broken edit."""
    active_rules_dir(tmp_path)
    r = RuleReloader(live_config("paper", tmp_path / "state"), load_rules)
    path = tmp_path / "rules" / "strategies" / "sma_cross.yaml"
    good = path.read_text()
    bad = good.replace("when: crossover(", "when: crossover_typo(")
    path.write_text(bad)
    assert r.check()[0] == "rejected"
    path.write_text(good)
    assert r.check()[0] == "same"
    path.write_text(bad)
    assert r.check()[0] == "rejected"


def test_a_sent_order_the_exchange_never_saw_is_abandoned_after_the_recovery_window(tmp_path):
    """An order left 'sent' (create's answer lost) that the exchange keeps reporting as not found
    must not hold its symbol and cash until a restart: once it has been unknown for longer than
    exchange.orders.recovery_lookback_s it is settled 'abandoned' (as reconcile would); a fresh one stays."""
    from types import SimpleNamespace

    from engine.live.exchange_broker import ExchangeBroker
    from engine.live.store import now_ms
    from tests.helpers.live import broker_context

    st = StateStore(tmp_path / "l.sqlite")
    for cid, sym, age_s in (("old", "A/USDC", 901), ("new", "B/USDC", 60)):
        st.db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, rule, status, created_wall_ms, "
                      f"updated_wall_ms) VALUES ('{cid}', 5, '{sym}', 'buy', 10.0, 'market', 'r', 'sent', ?, ?)",
                      (now_ms() - age_s * 1000, now_ms() - age_s * 1000))
    lookups = []
    adapter = SimpleNamespace(config=SimpleNamespace(orders=SimpleNamespace(recovery_lookback_s=900.0)),
                              fetch_order_by_client_id=lambda cid, *a: lookups.append(cid))
    ctx = broker_context(st, ["A/USDC", "B/USDC"])
    ExchangeBroker(adapter).refresh_open(ctx)
    assert sorted(lookups) == ["new", "old"]
    assert dict(st.db.execute("SELECT client_order_id, status FROM orders").fetchall()) == {"old": "abandoned",
                                                                                           "new": "sent"}
    d = SimpleNamespace(sell_qty=np.zeros(2), buy_qty=np.array([1.0, 1.0]))
    d, _ = ExchangeBroker(adapter).available(ctx, d, np.array([100.0, 100.0]))
    assert d.buy_qty.tolist() == [1.0, 0.0]  # A is free again; B is still being entered
    st.close()


def test_a_fill_of_an_order_abandoned_as_never_seen_is_adopted_as_ours(tmp_path):
    """No order is lost by abandoning it: if the exchange does list it (and its fill) later, the fill is
    attributed to our order (status updated), not adopted as a foreign fill with an error alert."""
    from types import SimpleNamespace

    from engine.exchange.types import Fill, OrderState
    from engine.live.exchange_broker import ExchangeBroker
    from engine.live.store import now_ms
    from tests.helpers.live import broker_context

    st = StateStore(tmp_path / "l.sqlite")
    st.db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, rule, status, created_wall_ms, "
                  "updated_wall_ms) VALUES ('c1', 5, 'A/USDC', 'buy', 10.0, 'market', 'r', 'abandoned', ?, ?)",
                  (now_ms(), now_ms()))
    adapter = SimpleNamespace(
        fills=lambda since: [Fill("tr1", "X1", "A/USDC", "buy", 10.0, 100.0, 1.0, now_ms())],
        fetch_order_by_client_id=lambda cid, *a: OrderState(cid, "X1", "A/USDC", "buy", "market", "closed",
                                                            10.0, 10.0, 100.0))
    ctx = broker_context(st, ["A/USDC"])
    assert ExchangeBroker(adapter).sync_fills(ctx) == 1
    assert st.rows("SELECT client_order_id FROM fills")[0]["client_order_id"] == "c1"
    assert st.rows("SELECT status, filled FROM orders")[0] == {"status": "filled", "filled": 10.0}
    assert st.db.execute("SELECT COUNT(*) FROM alerts WHERE kind='foreign_fill'").fetchone()[0] == 0
    st.close()
