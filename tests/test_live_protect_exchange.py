"""Live protections on the exchange: a live session (mode=live, the loop in a subprocess, the
Coinbase emulator in another) places a trailing stop as a stop-limit order after the entry
fills, replaces it as the trail rises and sees it filled; a SIGKILL between recording a stop and
sending it (or just after sending it) leaves exactly one stop per held position after restart."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers.live import STOP_DIE_AT, EmulatorProcess, active_rules_dir, start_loop, state_rows
from tests.helpers.runs import compose_config

# a tight trail on the emulator's 1m bars: it rises and fires within a short session
PROTECT = "protect:\n  trailing_stop: 0.002\n"
CONFIG = "stop_limit_stop_limit_gtc"


def _protected(tmp: Path) -> None:
    path = active_rules_dir(tmp) / "strategies" / "sma_cross.yaml"
    if PROTECT not in path.read_text():
        path.write_text(path.read_text() + PROTECT)


def _run(tmp: Path, emu: EmulatorProcess, cycles: int, die_at: str | None = None) -> int:
    cfg_file = tmp / "live.json"
    cfg_file.write_text(json.dumps(compose_config(emu.overrides("live", tmp / "state", cycles=cycles))))
    p = start_loop(cfg_file, "live", tmp / "live.log", die_at=die_at)
    return p.wait(timeout=180)


def _stops(state: dict) -> list[dict]:
    return [o for o in state["orders"] if o["client_order_id"].startswith("rb-") and CONFIG in o["order_configuration"]]


def _db(tmp: Path) -> Path:
    return tmp / "state" / "default-live.sqlite"


@pytest.mark.slow
def test_live_stop_is_placed_on_the_exchange_moved_as_the_trail_rises_and_filled(tmp_path):
    _protected(tmp_path)
    emu = EmulatorProcess(tmp_path)
    try:
        assert _run(tmp_path, emu, cycles=60) == 0, (tmp_path / "live.log").read_text()[-3000:]
        state = emu.dump(tmp_path / "dump.json")
    finally:
        emu.close()
    stops = _stops(state)
    assert stops, "the session should have placed a stop on the exchange"
    for o in stops:  # a stop loss: a sell that triggers on a fall, its limit under its stop
        spec = o["order_configuration"][CONFIG]
        assert o["side"] == "SELL" and spec["stop_direction"] == "STOP_DIRECTION_STOP_DOWN"
        assert float(spec["limit_price"]) < float(spec["stop_price"])
    by_symbol = defaultdict(list)
    for o in sorted(stops, key=lambda o: o["created_time"]):
        by_symbol[o["product_id"]].append(float(o["order_configuration"][CONFIG]["stop_price"]))
    # moved: a later stop of a position above an earlier one (the trail rose), cancel+replace
    assert any(any(b > a for a, b in zip(p, p[1:])) for p in by_symbol.values()), dict(by_symbol)
    assert any(o["status"] == "CANCELLED" for o in stops)
    filled = [o for o in stops if o["status"] == "FILLED"]
    assert filled, "a stop should have filled at the exchange"
    # the state file holds every stop, and adopted its fills under the protection's rule
    rows = dict(state_rows(_db(tmp_path), "SELECT client_order_id, status FROM orders WHERE type='stop_limit'"))
    assert {o["client_order_id"] for o in stops} <= set(rows)
    for o in filled:
        assert rows[o["client_order_id"]] == "filled"
        rule = state_rows(_db(tmp_path), "SELECT rule FROM fills WHERE client_order_id=?", (o["client_order_id"],))
        assert rule and rule[0][0] == "protect:trailing_stop"
    # never two at once: at most one stop rests per symbol, and only for a held position
    resting = [o["product_id"] for o in stops if o["status"] == "OPEN"]
    held = {s.replace("/", "-") for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert len(resting) == len(set(resting)) and set(resting) <= held
    alerts = [m for k, m in state_rows(_db(tmp_path), "SELECT kind, message FROM alerts") if k == "protections"]
    assert alerts and "trailing_stop placed on the exchange as stop_limit orders" in alerts[0]


@pytest.mark.slow
@pytest.mark.parametrize("die_at", STOP_DIE_AT)
def test_sigkill_around_sending_a_stop_leaves_exactly_one_stop_after_restart(tmp_path, die_at):
    _protected(tmp_path)
    emu = EmulatorProcess(tmp_path)
    try:
        assert _run(tmp_path, emu, cycles=200, die_at=die_at) == -9
        killed = [l for l in (tmp_path / "live.log").read_text().splitlines() if l.startswith("SIGKILL")][0].split()[-1]
        recorded = state_rows(_db(tmp_path), "SELECT status, type FROM orders WHERE client_order_id=?", (killed,))
        assert recorded == [("new", "stop_limit")]  # recorded before it was sent, either way
        at_exchange = [o for o in _stops(emu.dump(tmp_path / "before.json")) if o["client_order_id"] == killed]
        assert len(at_exchange) == (0 if die_at == "before_stop_send" else 1)
        assert _run(tmp_path, emu, cycles=2) == 0, (tmp_path / "live.log").read_text()[-3000:]
        state = emu.dump(tmp_path / "after.json")
    finally:
        emu.close()
    stops = _stops(state)
    assert [o["client_order_id"] for o in stops].count(killed) == 1  # placed once: by the restart, or before the kill
    resting = [o["product_id"] for o in stops if o["status"] == "OPEN"]
    held = {s.replace("/", "-") for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert sorted(resting) == sorted(held)  # exactly one per held position
    open_rows = state_rows(_db(tmp_path), "SELECT client_order_id FROM orders WHERE type='stop_limit' AND status='open'")
    assert sorted(r[0] for r in open_rows) == sorted(o["client_order_id"] for o in stops if o["status"] == "OPEN")

