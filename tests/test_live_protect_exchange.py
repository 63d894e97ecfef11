"""Live protections on the exchange, per venue (Coinbase stop-limit, Kraken stop-loss-limit, Binance
STOP_LOSS_LIMIT): a live session (mode=live, the loop in a subprocess, the venue's emulator front
end in another, the venue's real ccxt class between them) places a trailing stop as a stop-limit
sell after the entry fills, replaces it as the trail rises and sees it filled; a SIGKILL between
recording a stop and sending it (or just after sending it) leaves exactly one stop per held
position after restart, as the venue's own open orders show."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from engine.exchange.ids import from_native
from tests.helpers.live import PACE, STOP_DIE_AT, EmulatorProcess, active_rules_dir, held_at_venue, start_loop, state_rows
from tests.helpers.runs import compose_config

# a tight trail on the emulator's 1m bars: it rises and fires within a short session
PROTECT = "protect:\n  trailing_stop: 0.002\n"
VENUES = ["coinbase", "kraken", "binance"]


def _protected(tmp: Path) -> None:
    path = active_rules_dir(tmp) / "strategies" / "sma_cross.yaml"
    if PROTECT not in path.read_text():
        path.write_text(path.read_text() + PROTECT)


def _config(tmp: Path, emu: EmulatorProcess, cycles: int) -> dict:
    return compose_config(emu.overrides("live", tmp / "state", cycles=cycles) + PACE.get(emu.exchange, []))


def _run(tmp: Path, emu: EmulatorProcess, cycles: int, die_at: str | None = None) -> int:
    cfg_file = tmp / "live.json"
    cfg_file.write_text(json.dumps(_config(tmp, emu, cycles)))
    p = start_loop(cfg_file, "live", tmp / "live.log", emu.exchange, die_at=die_at)
    return p.wait(timeout=300)


def _stops(state: dict, style: str) -> list[dict]:
    """Our stops at the exchange (every front end's, in the engine's terms), with our client id."""
    out = []
    for o in state["orders"]:
        cid = from_native(o["client_order_id"], style)
        if o["stop_price"] is not None and cid and cid.startswith("rb-"):
            out.append({**o, "cid": cid})
    return out


def _resting(emu: EmulatorProcess, tmp: Path) -> list:
    """The stop-limit orders the venue lists as open, through its ccxt class. The emulator matches
    when asked (every request), so this may find a stop the bars after the loop's end filled:
    what the dump before it shows open is a superset."""
    with emu.adapter(tmp) as ad:
        return [s for s in ad.open_orders() if s.type == "stop_limit"]


def _db(tmp: Path) -> Path:
    return tmp / "state" / "default-live.sqlite"


@pytest.mark.slow
@pytest.mark.parametrize("exchange", VENUES)
def test_live_stop_is_placed_on_the_exchange_moved_as_the_trail_rises_and_filled(tmp_path, exchange):
    _protected(tmp_path)
    emu = EmulatorProcess(tmp_path, exchange=exchange)
    try:
        style = _config(tmp_path, emu, 1)["exchange"]["client_id"]["style"]
        assert _run(tmp_path, emu, cycles=60) == 0, (tmp_path / "live.log").read_text()[-3000:]
        emu.freeze()
        state = emu.dump(tmp_path / "dump.json")
        resting_at_venue = _resting(emu, tmp_path)
    finally:
        emu.close()
    stops = _stops(state, style)
    assert stops, "the session should have placed a stop on the exchange"
    for o in stops:  # a stop loss: a sell that triggers on a fall, its limit under its stop
        assert o["side"] == "SELL" and o["stop_direction"] == "STOP_DIRECTION_STOP_DOWN"
        assert o["limit_price"] < o["stop_price"]
    by_symbol = defaultdict(list)
    for o in sorted(stops, key=lambda o: o["created_time"]):
        by_symbol[o["product_id"]].append(o["stop_price"])
    # moved: a later stop of a position above an earlier one (the trail rose), cancel+replace
    assert any(any(b > a for a, b in zip(p, p[1:])) for p in by_symbol.values()), dict(by_symbol)
    assert any(o["status"] == "CANCELLED" for o in stops)
    filled = [o for o in stops if o["status"] == "FILLED"]
    assert filled, "a stop should have filled at the exchange"
    # the state file holds every stop, and adopted its fills under the protection's rule
    rows = dict(state_rows(_db(tmp_path), "SELECT client_order_id, status FROM orders WHERE type='stop_limit'"))
    assert {o["cid"] for o in stops} <= set(rows)
    newest = {p: max((o for o in stops if o["product_id"] == p), key=lambda o: o["created_time"])["cid"]
              for p in by_symbol}
    adopted = [o for o in filled if rows[o["cid"]] == "filled"]
    assert adopted, "the loop should have adopted a stop's fill"
    for o in filled:  # a stop the loop's very last request filled is the newest of its symbol, still open to it
        assert rows[o["cid"]] == "filled" or (rows[o["cid"]] == "open" and newest[o["product_id"]] == o["cid"])
    for o in adopted:
        rule = state_rows(_db(tmp_path), "SELECT rule FROM fills WHERE client_order_id=?", (o["cid"],))
        assert rule and rule[0][0] == "protect:trailing_stop"
    # never two at once: at most one stop rests per symbol, and only for a held position
    resting = [o["product_id"] for o in stops if o["status"] == "OPEN"]
    held = {s.replace("/", "-") for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert len(resting) == len(set(resting)) and set(resting) <= held
    # the venue lists these stops (less any the bars after the loop's end filled), trigger and limit as sent
    assert {(s.client_order_id, s.stop_price, s.limit_price) for s in resting_at_venue} <= \
        {(o["cid"], o["stop_price"], o["limit_price"]) for o in stops if o["status"] == "OPEN"}
    alerts = [m for k, m in state_rows(_db(tmp_path), "SELECT kind, message FROM alerts") if k == "protections"]
    assert alerts and "trailing_stop placed on the exchange as stop_limit orders" in alerts[0]


@pytest.mark.slow
@pytest.mark.parametrize("die_at", STOP_DIE_AT)
@pytest.mark.parametrize("exchange", VENUES)
def test_sigkill_around_sending_a_stop_leaves_exactly_one_stop_after_restart(tmp_path, exchange, die_at):
    _protected(tmp_path)
    emu = EmulatorProcess(tmp_path, exchange=exchange)
    try:
        style = _config(tmp_path, emu, 1)["exchange"]["client_id"]["style"]
        assert _run(tmp_path, emu, cycles=200, die_at=die_at) == -9, (tmp_path / "live.log").read_text()[-3000:]
        killed = [l for l in (tmp_path / "live.log").read_text().splitlines() if l.startswith("SIGKILL")][0].split()[-1]
        recorded = state_rows(_db(tmp_path), "SELECT status, type FROM orders WHERE client_order_id=?", (killed,))
        assert recorded == [("new", "stop_limit")]  # recorded before it was sent, either way
        at_exchange = [o for o in _stops(emu.dump(tmp_path / "before.json"), style) if o["cid"] == killed]
        assert len(at_exchange) == (0 if die_at == "before_stop_send" else 1)
        assert _run(tmp_path, emu, cycles=2) == 0, (tmp_path / "live.log").read_text()[-3000:]
        emu.freeze()
        state = emu.dump(tmp_path / "after.json")  # as the loop left it
        resting_at_venue = _resting(emu, tmp_path)
        now = emu.dump(tmp_path / "now.json")  # and once the venue has matched the bars since
    finally:
        emu.close()
    stops = _stops(state, style)
    fate = state_rows(_db(tmp_path), "SELECT status, reason, symbol FROM orders WHERE client_order_id=?", (killed,))[0]
    if fate[1] == "the bid is through its stop price after restart":
        # the price fell through the unsent stop while the loop was down (the session's clock runs on):
        # never sent, the loop sold the position at market under the stop's rule instead
        assert die_at == "before_stop_send" and fate[0] == "abandoned" and killed not in [o["cid"] for o in stops]
        sold = state_rows(_db(tmp_path), "SELECT rule FROM orders WHERE symbol=? AND type='market' AND side='sell' "
                          "AND rule LIKE 'protect:%'", (fate[2],))
        assert sold, "the loop should have sold the position the unsent stop protected"
    else:
        assert [o["cid"] for o in stops].count(killed) == 1  # placed once: by the restart, or before the kill
    held = {s for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert sorted(o["product_id"] for o in stops if o["status"] == "OPEN") == sorted(h.replace("/", "-") for h in held)
    open_rows = state_rows(_db(tmp_path), "SELECT client_order_id FROM orders WHERE type='stop_limit' AND status='open'")
    assert sorted(r[0] for r in open_rows) == sorted(o["cid"] for o in stops if o["status"] == "OPEN")
    # exactly one per position the venue holds, as the venue itself lists its open orders
    venue_holds = held_at_venue(now["balances"])
    # (the trail is tight: the bars between the loop's end and the freeze may have filled them all)
    assert sorted(s.symbol for s in resting_at_venue) == sorted(venue_holds), (now["balances"], resting_at_venue)
    assert {s.client_order_id for s in resting_at_venue} <= {r[0] for r in open_rows}


@pytest.mark.slow
def test_a_stop_the_price_fell_through_while_down_is_not_resent_and_the_loop_sells(tmp_path):
    """The restart finds the unsent stop's trigger above the bid (made so here by raising the recorded
    trigger above any price): the venue would refuse it, so it is abandoned, named, and the position
    is sold at market under the stop's rule."""
    import sqlite3

    _protected(tmp_path)
    emu = EmulatorProcess(tmp_path, exchange="coinbase")
    try:
        assert _run(tmp_path, emu, cycles=200, die_at="before_stop_send") == -9, (tmp_path / "live.log").read_text()[-3000:]
        killed = [l for l in (tmp_path / "live.log").read_text().splitlines() if l.startswith("SIGKILL")][0].split()[-1]
        symbol = state_rows(_db(tmp_path), "SELECT symbol FROM orders WHERE client_order_id=?", (killed,))[0][0]
        with sqlite3.connect(_db(tmp_path)) as db:  # the stop, and the trail's high it is drawn from, far above the bid
            db.execute("UPDATE orders SET stop_price=stop_price*100, limit_price=limit_price*100 WHERE client_order_id=?",
                       (killed,))
            db.commit()
            j = json.loads(db.execute("SELECT value FROM meta WHERE key='session'").fetchone()[0])["symbols"].index(symbol)
            prot = json.loads(db.execute("SELECT value FROM state WHERE key='protect'").fetchone()[0])
            stop = state_rows(_db(tmp_path), "SELECT stop_price FROM orders WHERE client_order_id=?", (killed,))[0][0]
            prot["levels"]["high"][j], prot["levels"]["trail_frac"][j] = stop / (1 - 0.002), 0.002  # as at entry
            db.execute("UPDATE state SET value=? WHERE key='protect'", (json.dumps(prot, sort_keys=True),))
        assert _run(tmp_path, emu, cycles=2) == 0, (tmp_path / "live.log").read_text()[-3000:]
        emu.freeze()
        state = emu.dump(tmp_path / "after.json")
    finally:
        emu.close()
    assert killed not in [o["cid"] for o in _stops(state, "coinbase")]  # never sent
    assert state_rows(_db(tmp_path), "SELECT status, reason FROM orders WHERE client_order_id=?", (killed,)) == \
        [("abandoned", "the bid is through its stop price after restart")]
    sold = state_rows(_db(tmp_path), "SELECT rule, status FROM orders WHERE symbol=? AND type='market' AND side='sell' "
                      "AND t >= (SELECT t FROM orders WHERE client_order_id=?)", (symbol, killed))
    assert ("protect:trailing_stop", "filled") in sold, sold
