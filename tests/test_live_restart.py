"""Restart and reconciliation of the live loop at precise crash points (in-process loop, emulator
in another process): each test stops the loop at one step and checks what the next start settles."""
from __future__ import annotations

import sqlite3

import pytest

from engine.live import brokers, exchange_broker, loop
from engine.modes.live import open_session
from tests.helpers.live import EmulatorProcess
from tests.helpers.runs import compose_config


class _Crash(BaseException):
    """The process dies here (nothing after it runs, no finally of ours settles anything)."""


def _run_until_the_crash(s) -> None:
    """Run the session into its planted _Crash, then let go of its files and connections."""
    with pytest.raises(_Crash):
        s.run()
    s.adapter.close()
    s.store.close()


def _session(emu, tmp, monkeypatch, cycles):
    for k, v in EmulatorProcess.env().items():
        if k.startswith("RB_TEST_"):
            monkeypatch.setenv(k, v)
    cfg = compose_config(emu.overrides("live", tmp / "state", cycles=cycles))
    return open_session(cfg, "live")


@pytest.mark.slow
def test_a_fill_made_before_a_crash_is_adopted_after_a_late_restart(tmp_path, monkeypatch):
    emu = EmulatorProcess(tmp_path)
    try:
        real_send = exchange_broker.ExchangeBroker.submit

        def send_then_die(self, ctx, t, orders, decision):
            for o in orders:
                self._send_one(ctx, o)  # sent and acknowledged (a market order fills at once) ...
            if orders:
                raise _Crash()  # ... killed before its fills were synced

        monkeypatch.setattr(exchange_broker.ExchangeBroker, "submit", send_then_die)
        s = _session(emu, tmp_path, monkeypatch, cycles=200)
        _run_until_the_crash(s)
        monkeypatch.setattr(exchange_broker.ExchangeBroker, "submit", real_send)
        # the operator restarts the loop five minutes later
        later = loop.now_ms
        monkeypatch.setattr(loop, "now_ms", lambda: later() + 300_000)
        s = _session(emu, tmp_path, monkeypatch, cycles=1)
        s.start()
        s.broker.reconcile(s.ctx)
        s.adapter.close()
        s.store.close()
        state = emu.dump(tmp_path / "dump.json")
    finally:
        emu.close()
    db = sqlite3.connect(str(tmp_path / "state" / "default-live.sqlite"))
    at_exchange = {o["client_order_id"]: float(o["filled_size"]) for o in state["orders"]}
    assert at_exchange and sum(at_exchange.values()) > 0
    recorded = dict(db.execute("SELECT client_order_id, SUM(qty) FROM fills GROUP BY client_order_id").fetchall())
    for cid, filled in at_exchange.items():
        assert recorded.get(cid, 0.0) == pytest.approx(filled, rel=1e-9), "a fill at the exchange was never adopted"
    positions = dict(db.execute("SELECT symbol, qty FROM positions").fetchall())
    for ccy, (avail, hold) in state["balances"].items():
        if ccy != "USDC":
            assert positions.get(f"{ccy}/USDC", 0.0) == pytest.approx(avail + hold, rel=1e-9, abs=1e-12)
    db.close()


class _InProcessEmulator:
    """An emulator in this process (faults can be injected), with EmulatorProcess's overrides."""

    def __init__(self, speed: float = 120.0):
        import time

        from engine.exchange.emulator import CoinbaseEmulator
        from engine.exchange.emulator.market import SimMarket
        market = SimMarket.generate(seed=7, n_products=3, speed=speed)
        self.emu = CoinbaseEmulator(market=market, balances={"USDC": 10_000.0}, enforce_rate_limits=False)
        self.emu.start()
        self.info = {"url": self.emu.url, "sim_ms": market.now_ms(), "wall_s": time.time(), "speed": speed}

    def overrides(self, mode, state_dir, cycles):
        return EmulatorProcess.overrides(self, mode, state_dir, cycles) + ["exchange.retry.base_delay_s=0.001",
                                                                           "exchange.retry.max_delay_s=0.002"]


@pytest.mark.slow
def test_an_order_whose_answer_was_lost_is_found_after_a_restart_past_the_lookback(tmp_path, monkeypatch):
    """create_order's answers are all lost and the order lookups fail (an outage): the order is
    recorded 'sent'. The loop dies; it restarts 20 minutes later (past orders.recovery_lookback_s,
    15 min): the order was placed and filled, so it must be adopted, not abandoned."""
    x = _InProcessEmulator()
    try:
        def send_in_an_outage(self, ctx, t, orders, decision):
            if not orders:
                return
            x.emu.faults.add("lost_response", "create_order", times=100)
            x.emu.faults.add("server_error", "list_orders", times=1000)
            self._send_one(ctx, orders[0])
            raise _Crash()

        monkeypatch.setattr(exchange_broker.ExchangeBroker, "submit", send_in_an_outage)
        s = _session(x, tmp_path, monkeypatch, cycles=200)
        _run_until_the_crash(s)
        x.emu.faults.clear()
        db = sqlite3.connect(str(tmp_path / "state" / "default-live.sqlite"))
        assert db.execute("SELECT status FROM orders").fetchall() == [("sent",)]
        db.close()
        later = loop.now_ms
        monkeypatch.setattr(loop, "now_ms", lambda: later() + 1_200_000)
        s = _session(x, tmp_path, monkeypatch, cycles=1)
        wall = s.adapter.wall_clock
        s.adapter.wall_clock = lambda: wall() + 1_200.0
        s.start()
        s.broker.reconcile(s.ctx)
        s.adapter.close()
        s.store.close()
        at_exchange = {o["client_order_id"]: o for o in x.emu.orders()}
    finally:
        x.emu.stop()
    db = sqlite3.connect(str(tmp_path / "state" / "default-live.sqlite"))
    rows = db.execute("SELECT client_order_id, status, exchange_order_id FROM orders").fetchall()
    assert len(rows) == 1 and rows[0][0] in at_exchange
    assert rows[0][1:] == ("filled", at_exchange[rows[0][0]]["order_id"])
    assert db.execute("SELECT COUNT(*) FROM alerts WHERE kind='foreign_fill'").fetchone()[0] == 0
    db.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["live", "paper"])
def test_a_buy_recorded_before_a_crash_is_not_sent_on_restart_while_the_kill_switch_is_on(tmp_path, monkeypatch, mode):
    """Killed between recording a buy and sending it; the operator turns the kill switch on and
    restarts: entries are halted, so the recorded buy must not go out (nor fill, in paper)."""
    from engine.live.safeguards import set_kill
    x = _InProcessEmulator()
    try:
        broker = exchange_broker.ExchangeBroker if mode == "live" else brokers.SimulatedBroker

        def die_before_sending(self, ctx, t, orders, decision):
            if any(o.side == "buy" for o in orders):
                raise _Crash()

        monkeypatch.setattr(broker, "submit", die_before_sending)
        for k, v in EmulatorProcess.env().items():
            if k.startswith("RB_TEST_"):
                monkeypatch.setenv(k, v)
        ov = x.overrides(mode, tmp_path / "state", 200)
        s = open_session(compose_config(ov), mode)
        with pytest.raises(_Crash):
            s.run()
        set_kill(s.store, True)  # python -m engine.live kill --state ...
        s.adapter.close()
        s.store.close()
        monkeypatch.undo()
        for k, v in EmulatorProcess.env().items():
            if k.startswith("RB_TEST_"):
                monkeypatch.setenv(k, v)
        s = open_session(compose_config(x.overrides(mode, tmp_path / "state", 1)), mode)
        s.start()
        s.broker.reconcile(s.ctx)
        s.adapter.close()
        s.store.close()
        sent = [o for o in x.emu.orders() if o["side"] == "BUY"]
    finally:
        x.emu.stop()
    db = sqlite3.connect(str(tmp_path / "state" / f"default-{mode}.sqlite"))
    assert sent == []
    assert db.execute("SELECT COUNT(*) FROM fills WHERE side='buy'").fetchone()[0] == 0
    assert db.execute("SELECT status FROM orders WHERE side='buy'").fetchall() == [("abandoned",)]
    db.close()


@pytest.mark.slow
def test_a_wrong_api_key_ends_in_one_clear_error_not_a_traceback(tmp_path):
    import time

    from engine.exchange.emulator import CoinbaseEmulator
    from engine.exchange.keys import public_key_of, throwaway_credentials
    from tests.helpers.runs import run_cli
    right, wrong = throwaway_credentials(seed=1), throwaway_credentials(seed=2)
    emu = CoinbaseEmulator(seed=7, products=3, speed=120.0, api_keys={right.api_key: public_key_of(right)},
                           enforce_rate_limits=False)
    with emu:
        shim = type("Shim", (), {"info": {"url": emu.url, "sim_ms": emu.market.now_ms(), "wall_s": time.time(),
                                          "speed": 120.0}})()
        ov = EmulatorProcess.overrides(shim, "paper", tmp_path / "state", 2) + [f"hydra.run.dir={tmp_path / 'out'}"]
        r = run_cli(ov, env={"RB_TEST_KEY": wrong.api_key, "RB_TEST_SECRET": wrong.secret}, timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "error:" in r.stderr and "authentication" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paper", "live"])
def test_a_bar_stored_but_not_decided_before_a_crash_is_decided_at_once_on_restart(tmp_path, monkeypatch, mode):
    """Killed after fetching a bar, before deciding on it; restarted while that bar is still the
    newest: the loop decides on it now, not one bar later (a stop-loss would wait a whole bar)."""
    from engine.live.loop import Session
    x = _InProcessEmulator(speed=10.0)  # 6 s bars: the restart lands inside the same bar
    try:
        for k, v in EmulatorProcess.env().items():
            if k.startswith("RB_TEST_"):
                monkeypatch.setenv(k, v)

        real_cycle = Session.cycle

        def die(self, t):
            if self.last_t is not None:  # the account has decided before: crash on its next bar
                raise _Crash()
            real_cycle(self, t)

        with monkeypatch.context() as m:
            m.setattr(Session, "cycle", die)
            s = open_session(compose_config(x.overrides(mode, tmp_path / "state", 5)), mode)
            with pytest.raises(_Crash):
                s.run()
            newest = s.store.n_bars() - 1
            s.adapter.close()
            s.store.close()
        s = open_session(compose_config(x.overrides(mode, tmp_path / "state", 1)), mode)
        s.run()
        s.adapter.close()
        s.store.close()
    finally:
        x.emu.stop()
    db = sqlite3.connect(str(tmp_path / "state" / f"default-{mode}.sqlite"))
    assert db.execute("SELECT t FROM cycles").fetchall() == [(newest - 1,), (newest,)]
    assert db.execute("SELECT COUNT(*) FROM alerts WHERE kind='bars_skipped'").fetchone()[0] == 0
    db.close()


@pytest.mark.slow
def test_the_kill_switch_acts_between_bars_not_at_the_next_one(tmp_path, monkeypatch):
    """The kill file appears while the loop waits for the next bar: open orders are cancelled and
    the alert raised within a second, not when the next bar closes."""
    import threading
    import time
    x = _InProcessEmulator(speed=5.0)  # 12 s bars
    flag = tmp_path / "KILL"
    try:
        for k, v in EmulatorProcess.env().items():
            if k.startswith("RB_TEST_"):
                monkeypatch.setenv(k, v)
        ov = x.overrides("paper", tmp_path / "state", 3) + [f"live.kill_switch_file={flag}"]
        cfg, box = compose_config(ov), {}

        def loop_thread():  # the state file's connection belongs to the thread that opens it
            s = box["s"] = open_session(cfg, "paper")
            try:
                s.run()
            finally:
                s.adapter.close()
                s.store.close()

        th = threading.Thread(target=loop_thread, daemon=True)
        th.start()
        db_path = tmp_path / "state" / "default-paper.sqlite"
        def cycles() -> int:
            try:
                db = sqlite3.connect(str(db_path))
                try:
                    return db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]
                finally:
                    db.close()
            except sqlite3.OperationalError:  # not created yet
                return 0

        for _ in range(300):  # until the first cycle is recorded
            time.sleep(0.1)
            if cycles():
                break
        flag.touch()
        time.sleep(1.5)
        db = sqlite3.connect(str(db_path))
        n_cycles = db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]
        kills = db.execute("SELECT COUNT(*) FROM alerts WHERE kind='kill_switch'").fetchone()[0]
        db.close()
        box["s"].stop_requested = True
        th.join(timeout=30)
    finally:
        x.emu.stop()
    assert n_cycles == 1, "the test meant to look between the first and second bar"
    assert kills == 1


@pytest.mark.slow
def test_an_open_buy_is_not_bought_twice_and_its_cash_is_not_spent_again(tmp_path, monkeypatch):
    """A market buy whose fill comes late stays open at the exchange (its cash held there). The
    next cycle's decision wants the same position again plus another symbol: the open buy must not
    be bought a second time, and the new buy must fit in the cash the open buy leaves."""
    import time

    import numpy as np

    x = _InProcessEmulator()
    try:
        s = _session(x, tmp_path, monkeypatch, cycles=5)
        s.start()
        s.broker.reconcile(s.ctx)
        s.session_id = None
        real = loop.decide
        plan = []

        def wanting(cycle_plan, t, pf, *a, **kw):
            d, change = real(cycle_plan, t, pf, *a, **kw)
            d.sell_qty[:] = 0.0
            d.buy_qty[:] = 0.0
            for j, usd in plan:
                d.buy_qty[j] = np.floor(usd / cycle_plan.p.close[t, j] / s.size_increment[j]) * s.size_increment[j]
                d.entry_rule[j] = "test"
            return d, change

        monkeypatch.setattr(loop, "decide", wanting)
        x.emu.faults.add("delayed_fill", "create_order", times=1, steps=10_000)
        plan[:] = [(0, 6_000.0)]
        s.cycle(s.store.n_bars() - 1)
        first = s.store.n_bars()
        while s._refresh() == 0 or s.store.n_bars() == first:
            time.sleep(0.05)
        plan[:] = [(0, 6_000.0), (1, 6_000.0)]
        s.cycle(s.store.n_bars() - 1)
        at_exchange = x.emu.orders()
        rows = s.store.rows("SELECT symbol, status, reason FROM orders ORDER BY t, symbol")
        s.adapter.close()
        s.store.close()
    finally:
        x.emu.stop()
    sym0, sym1 = s.symbols[0], s.symbols[1]
    assert [r["symbol"] for r in rows].count(sym0) == 1, rows
    assert sum(o["product_id"] == sym0.replace("/", "-") for o in at_exchange) == 1
    assert [r["status"] for r in rows if r["symbol"] == sym1] == ["filled"], rows
