"""Coinbase, Kraken and Binance end to end: a paper session per exchange profile against its
emulator front end on 127.0.0.1 (port 0) through the real ccxt class, and the live loop SIGKILLed
at an exact step (an order recorded but not sent; an order sent but its answer not recorded),
restarted, and checked against what the exchange holds: no order lost, none duplicated, fills
and positions equal to the exchange's."""
from __future__ import annotations

import json
import sqlite3

import ccxt
import pytest

from engine.exchange.ids import from_native
from engine.modes.live import open_session
from tests.helpers.live import DIE_AT, EmulatorProcess, live_overrides, start_loop, state_rows
from tests.helpers.runs import compose_config

EXCHANGES = ["coinbase", "kraken", "binance"]
PROFILE = {"coinbase": "local_sim", "kraken": "kraken_sim", "binance": "binance_sim"}


@pytest.mark.slow
@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_paper_session_runs_against_each_exchange_emulator_through_its_ccxt_class(tmp_path, exchange):
    ov = live_overrides("paper", tmp_path / "state", f"exchange={PROFILE[exchange]}", cycles=2)
    s = open_session(compose_config(ov), "paper")
    try:
        summary = s.run()
        emu = s.adapter.emulator
        routes = {r[1] for r in emu.requests}
        client, metrics = s.adapter.client, s.adapter.rate_metrics()
        server_429 = sum(emu.rate_limited.values())
        sent = emu.orders()
    finally:
        s.adapter.close()
        s.store.close()
    assert isinstance(client, getattr(ccxt, exchange))  # the real class, pointed at 127.0.0.1
    assert client.urls["api"] and emu.EXCHANGE == exchange
    assert {"products", "candles"} <= routes  # markets and bars came from this front end
    assert summary["cycles"] == 2, summary
    db = sqlite3.connect(str(tmp_path / "state" / "default-paper.sqlite"))
    assert db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] == 2
    # ended by live.max_cycles (not 'failed'; 'passed' needs the burn-in's 3 paper cycles)
    assert db.execute("SELECT status FROM sessions").fetchall() == [("ended",)] and summary["status"] == "ended"
    db.close()
    assert sent == []  # paper fills in the simulator: nothing is placed at the exchange
    assert server_429 == 0 and sum(m["rate_limited"] for m in metrics.values()) == 0


@pytest.mark.slow
@pytest.mark.parametrize("die_at", DIE_AT)
@pytest.mark.parametrize("exchange", EXCHANGES)
def test_sigkill_around_sending_an_order_then_restart_leaves_exactly_one_order(tmp_path, exchange, die_at):
    emu = EmulatorProcess(tmp_path, exchange=exchange)
    log = tmp_path / "loop.log"
    try:
        cfg_file = tmp_path / "live.json"
        cfg = compose_config(emu.overrides("live", tmp_path / "state", cycles=400))
        style = cfg["exchange"]["client_id"]["style"]
        cfg_file.write_text(json.dumps(cfg))
        p = start_loop(cfg_file, "live", log, exchange, die_at)
        assert p.wait(timeout=240) == -9, log.read_text()[-3000:]  # it killed itself at the planted step
        killed = log.read_text().split("SIGKILL ", 1)[1].split()[2]
        mid = emu.dump(tmp_path / "mid.json")
        # the restart may resend a recorded order however long the restart took (the point is the
        # exactly-once, not the freshness policy); it reconciles, runs two cycles and ends by itself
        final = compose_config(emu.overrides("live", tmp_path / "state", cycles=2) + ["live.resend_max_age_bars=100000"])
        cfg_file.write_text(json.dumps(final))
        p = start_loop(cfg_file, "live", log, exchange)
        assert p.wait(timeout=240) == 0, log.read_text()[-3000:]
        state = emu.dump(tmp_path / "dump.json")
    finally:
        emu.close()
    before = [from_native(o["client_order_id"], style) for o in mid["orders"]]
    assert before.count(killed) == (0 if die_at == "before_send" else 1)  # the kill came where planted
    db = tmp_path / "state" / "default-live.sqlite"
    ours = {cid: (st, eid) for cid, st, eid in state_rows(db, "SELECT client_order_id, status, exchange_order_id FROM orders")}
    at_exchange = [{**o, "cid": from_native(o["client_order_id"], style)} for o in state["orders"]]
    cids = [o["cid"] for o in at_exchange]
    assert cids.count(killed) == 1, f"order {killed}: {cids.count(killed)} at the exchange, expected exactly one"
    assert len(cids) == len(set(cids)), "two exchange orders for one client order id"
    for o in at_exchange:  # none lost: the state file knows every order the exchange holds, by its id there
        assert o["cid"] in ours, f"order {o['cid']} at the exchange is not in the state file"
        assert ours[o["cid"]][1] == o["exchange_order_id"]
    assert ours[killed][0] in ("open", "filled", "canceled")
    assert state_rows(db, "SELECT COUNT(*) FROM orders WHERE status IN ('new', 'sent')")[0][0] == 0
    filled = {o["cid"]: float(o["filled_size"]) for o in at_exchange}
    recorded = dict(state_rows(db, "SELECT client_order_id, SUM(qty) FROM fills GROUP BY client_order_id"))
    assert set(recorded) <= set(filled)
    for cid, qty in filled.items():  # fills reconciled both ways
        assert recorded.get(cid, 0.0) == pytest.approx(qty, rel=1e-9), cid
    positions = dict(state_rows(db, "SELECT symbol, qty FROM positions"))
    for ccy, (avail, hold) in state["balances"].items():
        if ccy != "USDC":
            assert positions.get(f"{ccy}/USDC", 0.0) == pytest.approx(avail + hold, rel=1e-9, abs=1e-12), ccy
    assert state_rows(db, "SELECT amount FROM cash")[0][0] == pytest.approx(sum(state["balances"]["USDC"]), rel=1e-9)
