"""Restart and reconciliation of the live loop at precise crash points (in-process loop, emulator
in another process): each test stops the loop at one step and checks what the next start settles."""
from __future__ import annotations

import sqlite3

import pytest

from engine.live import brokers, loop
from engine.modes.live import open_session
from tests.helpers.live import EmulatorProcess
from tests.helpers.runs import compose_config


class _Crash(BaseException):
    """The process dies here (nothing after it runs, no finally of ours settles anything)."""


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
        real_send = brokers.LiveBroker.send

        def send_then_die(self, s, t, orders, decision, quotes):
            for o in orders:
                self._send_one(s, o)  # sent and acknowledged (a market order fills at once) ...
            if orders:
                raise _Crash()  # ... killed before its fills were synced

        monkeypatch.setattr(brokers.LiveBroker, "send", send_then_die)
        s = _session(emu, tmp_path, monkeypatch, cycles=200)
        with pytest.raises(_Crash):
            s.run()
        s.adapter.close()
        s.store.close()
        monkeypatch.setattr(brokers.LiveBroker, "send", real_send)
        # the operator restarts the loop five minutes later
        later = loop.now_ms
        monkeypatch.setattr(loop, "now_ms", lambda: later() + 300_000)
        s = _session(emu, tmp_path, monkeypatch, cycles=1)
        s.start()
        s.broker.reconcile(s)
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
