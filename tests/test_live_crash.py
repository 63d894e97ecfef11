"""Crash and restart: SIGKILL the paper and live loops at random points (>= 20 kills each run
set), restart, and check that no order is lost or duplicated and positions match the exchange.

The emulator runs in its own process, so killing the loop never kills the exchange.
"""
from __future__ import annotations

import json
import random
import signal
import time

import pytest

from tests.helpers.live import EmulatorProcess, start_loop, state_rows, wait_started
from tests.helpers.runs import compose_config

KILLS = 10  # per mode: 20 in all


def _crash_runs(tmp, emu, mode: str, seed: int) -> None:
    cfg = compose_config(emu.overrides(mode, tmp / "state", cycles=400))
    cfg_file = tmp / f"{mode}.json"
    cfg_file.write_text(json.dumps(cfg))
    rng = random.Random(seed)
    log = tmp / f"{mode}.log"
    for k in range(KILLS):
        p = start_loop(cfg_file, mode, log)
        wait_started(log, k + 1)
        # the crash point: a random moment (opening, reconciling, fetching, deciding, sending...),
        # fault injection rather than a wait for something to happen
        time.sleep(rng.uniform(0.1, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
    # a last, clean restart: it reconciles, runs a few cycles and ends by itself
    final = compose_config(emu.overrides(mode, tmp / "state", cycles=3))
    cfg_file.write_text(json.dumps(final))
    p = start_loop(cfg_file, mode, log)
    assert p.wait(timeout=60) == 0, log.read_text()[-3000:]


@pytest.mark.slow
def test_sigkill_live_loop_loses_and_duplicates_no_order(tmp_path):
    emu = EmulatorProcess(tmp_path)
    try:
        _crash_runs(tmp_path, emu, "live", seed=1)
        state = emu.dump(tmp_path / "dump.json")
    finally:
        emu.close()
    db = tmp_path / "state" / "default-live.sqlite"
    ours = {cid: (st, eid) for cid, st, eid in state_rows(db, "SELECT client_order_id, status, exchange_order_id FROM orders")}
    at_exchange = [o for o in state["orders"] if o["client_order_id"].startswith("rb-")]
    assert len(at_exchange) >= 5, "the loop should have traded"
    # none lost: every order the exchange has is recorded, with its exchange id
    for o in at_exchange:
        assert o["client_order_id"] in ours, f"order {o['client_order_id']} at the exchange is not in the state file"
        assert ours[o["client_order_id"]][1] == o["order_id"]
    # none duplicated: one exchange order per client id and at most one order per (bar, symbol, side)
    cids = [o["client_order_id"] for o in at_exchange]
    assert len(cids) == len(set(cids))
    assert state_rows(db, "SELECT t, symbol, side FROM orders GROUP BY t, symbol, side HAVING COUNT(*) > 1") == []
    # settled: nothing left in an unknown state, and recorded fills equal the exchange's
    assert state_rows(db, "SELECT COUNT(*) FROM orders WHERE status IN ('new', 'sent')")[0][0] == 0
    filled = {o["client_order_id"]: float(o["filled_size"]) for o in at_exchange}
    recorded = dict(state_rows(db, "SELECT client_order_id, SUM(qty) FROM fills GROUP BY client_order_id"))
    assert sum(filled.values()) > 0, "the exchange should have filled some of the loop's orders"
    assert set(recorded) <= set(filled), "a recorded fill of an order the exchange does not hold"
    for cid, qty in filled.items():  # both ways: an exchange fill never adopted fails here too
        assert recorded.get(cid, 0.0) == pytest.approx(qty, rel=1e-9), cid
    # positions equal the emulator's balances (the account started with quote cash only)
    positions = dict(state_rows(db, "SELECT symbol, qty FROM positions"))
    for ccy, (avail, hold) in state["balances"].items():
        if ccy == "USDC":
            continue
        assert positions.get(f"{ccy}/USDC", 0.0) == pytest.approx(avail + hold, rel=1e-9, abs=1e-12)
    cash = state_rows(db, "SELECT amount FROM cash")[0][0]
    assert cash == pytest.approx(sum(state["balances"]["USDC"]), rel=1e-9)


@pytest.mark.slow
def test_sigkill_paper_loop_keeps_one_fill_per_order(tmp_path):
    emu = EmulatorProcess(tmp_path)
    try:
        _crash_runs(tmp_path, emu, "paper", seed=2)
    finally:
        emu.close()
    db = tmp_path / "state" / "default-paper.sqlite"
    n_orders = state_rows(db, "SELECT COUNT(*) FROM orders")[0][0]
    assert n_orders >= 5
    assert state_rows(db, "SELECT COUNT(*) FROM orders WHERE status IN ('new', 'sent')")[0][0] == 0
    assert state_rows(db, "SELECT client_order_id FROM fills GROUP BY client_order_id HAVING COUNT(*) > 1") == []
    assert state_rows(db, "SELECT COUNT(*) FROM orders o WHERE status='filled' AND NOT EXISTS "
                     "(SELECT 1 FROM fills f WHERE f.client_order_id=o.client_order_id)")[0][0] == 0
    # positions and cash are exactly what the fills add up to
    for sym, qty in state_rows(db, "SELECT symbol, qty FROM positions"):
        net = state_rows(db, "SELECT SUM(CASE side WHEN 'buy' THEN qty ELSE -qty END) FROM fills WHERE symbol=?", (sym,))[0][0]
        assert qty == pytest.approx(net, rel=1e-9)
    buys = state_rows(db, "SELECT COALESCE(SUM(qty*price+fee),0) FROM fills WHERE side='buy'")[0][0]
    sells = state_rows(db, "SELECT COALESCE(SUM(qty*price-fee),0) FROM fills WHERE side='sell'")[0][0]
    assert state_rows(db, "SELECT amount FROM cash")[0][0] == pytest.approx(10_000 - buys + sells, rel=1e-9)
