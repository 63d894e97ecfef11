"""Take-profits on the exchange, per venue that takes them (engine/exchange/profiles.py TAKE_PROFIT):
a live session (mode=live, the loop in a subprocess, the venue's emulator front end in another, the
venue's real ccxt class between them).

- Binance: a position's trailing stop and take-profit rest as one OCO order list (a LIMIT_MAKER
  sell at the take-profit, a STOP_LOSS_LIMIT under the price); one leg filling expires the other,
  a trail move cancels the list and places a new one, and the take-profit's fill is adopted under
  ``protect:take_profit``;
- Coinbase: both rest as one trigger_bracket_gtc order (a limit sell at the take-profit, a stop
  trigger under the price), replaced as the trail rises; its fill is adopted under
  ``protect:take_profit`` at or over the take-profit, else under the stop's rule;
- Kraken (and each venue, with no stop configured): a take-profit alone rests as a take-profit-limit
  sell (trigger and limit at the take-profit), fills at the venue when the price rises, and is
  adopted under ``protect:take_profit``; with a stop too, Kraken rests the stop and the loop sells
  at the take-profit;
- a SIGKILL between recording the list (the take-profit) and sending it, or just after sending it,
  leaves exactly one after restart, as the venue's own open orders show."""
from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from engine.exchange.ids import from_native
from tests.helpers.live import TAKE_DIE_AT, EmulatorProcess, held_at_venue, state_rows, with_protect
from tests.helpers.live import protected_session as _session
from tests.helpers.live import run_live as _run

# tight levels on the emulator's 1m bars: the trail rises and the take-profit fills within a short session
BOTH = "protect:\n  take_profit: 0.002\n  trailing_stop: 0.003\n"
TAKE_ONLY = "protect:\n  take_profit: 0.002\n"
PROTECT = {"binance": BOTH, "coinbase": BOTH, "kraken": TAKE_ONLY}
STYLE = {"binance": "prefixed", "coinbase": "prefixed", "kraken": "uuid"}


def _db(tmp: Path) -> Path:
    return tmp / "state" / "default-live.sqlite"


def _ours(state: dict, exchange: str) -> list[dict]:
    """Our sells resting or rested at the venue that are protections: stops, take-profits, list legs."""
    out = []
    for o in state["orders"]:
        cid = from_native(o["client_order_id"], STYLE[exchange])
        if cid and cid.startswith("rb-") and o["side"] == "SELL" and (o["stop_price"] is not None or o["list_id"]):
            out.append({**o, "cid": cid})
    return out


def _is_take(o: dict) -> bool:
    """A take-profit at the venue: an OCO's LIMIT_MAKER leg, or a sell triggering on a rise."""
    return (o["list_id"] is not None and o["stop_price"] is None) or o["stop_direction"] == "STOP_DIRECTION_STOP_UP"


def _lists(orders: list[dict]) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for o in orders:
        if o["list_id"]:
            out[o["list_id"]].append(o)
    return dict(out)


def _fill_rules(tmp: Path, cid: str) -> list[str]:
    return [r[0] for r in state_rows(_db(tmp), "SELECT rule FROM fills WHERE client_order_id=?", (cid,))]


def _protections_alert(tmp: Path) -> str:
    return [m for k, m in state_rows(_db(tmp), "SELECT kind, message FROM alerts") if k == "protections"][0]


@pytest.mark.slow
def test_binance_oco_rests_take_profit_and_stop_together_one_fills_the_other_expires_a_trail_move_replaces_it(tmp_path):
    state = _session(tmp_path, "binance", PROTECT["binance"])
    ours = _ours(state, "binance")
    lists = _lists(ours)
    assert lists, "the session should have placed OCO order lists"
    rows = {r[0]: r[1:] for r in state_rows(_db(tmp_path), "SELECT client_order_id, type, list_id, rule, status "
                                            "FROM orders WHERE list_id IS NOT NULL")}
    for legs in lists.values():  # a take-profit above and a stop-limit below, the base held once
        take, = [o for o in legs if _is_take(o)]
        stop, = [o for o in legs if not _is_take(o)]
        assert take["order_type"] == "LIMIT" and take["post_only"] and stop["order_type"] == "STOP_LIMIT"
        assert stop["stop_direction"] == "STOP_DIRECTION_STOP_DOWN" and stop["limit_price"] < stop["stop_price"]
        assert take["limit_price"] > stop["stop_price"]
        # recorded in the state file as one list: the legs share its list_id, each typed and ruled
        assert rows[take["cid"]][0] == "take_profit" and rows[take["cid"]][2] == "protect:take_profit"
        assert rows[stop["cid"]][0] == "stop_limit" and rows[stop["cid"]][2] == "protect:trailing_stop"
        assert rows[take["cid"]][1] == rows[stop["cid"]][1] is not None
        # one leg done ends the other: filled and expired, or both cancelled (a replacement), or both open;
        # or the stop triggered (the take-profit expired) and rests unfilled, or was cancelled by an exit
        seen = sorted(o["status"] for o in legs)
        assert seen in (["EXPIRED", "FILLED"], ["CANCELLED", "CANCELLED"], ["OPEN", "OPEN"], ["EXPIRED", "OPEN"],
                        ["CANCELLED", "EXPIRED"]), legs
        if seen in (["EXPIRED", "OPEN"], ["CANCELLED", "EXPIRED"]):
            assert take["status"] == "EXPIRED"
    statuses = [{o["status"]: o for o in legs} for legs in lists.values()]
    took = [s["FILLED"] for s in statuses if "FILLED" in s and _is_take(s["FILLED"])]
    assert took, "a take-profit leg should have filled at the venue (and its stop leg expired)"
    adopted = [o for o in took if _fill_rules(tmp_path, o["cid"])]
    assert adopted and all(_fill_rules(tmp_path, o["cid"]) == ["protect:take_profit"] for o in adopted)
    for o in adopted:  # the expired stop leg is closed in the state file too
        other = [x for x in ours if x["list_id"] == o["list_id"] and x is not o][0]
        assert rows[other["cid"]][3] == "canceled"
    # a trail move: a list cancelled whole and a later list of the symbol with a higher stop, the same take-profit
    by_symbol = defaultdict(list)
    for legs in sorted(lists.values(), key=lambda g: min(o["created_time"] for o in g)):
        stop = [o for o in legs if not _is_take(o)][0]
        take = [o for o in legs if _is_take(o)][0]
        by_symbol[stop["product_id"]].append((stop["stop_price"], take["limit_price"], stop["status"]))
    moved = [(a, b) for seq in by_symbol.values() for a, b in zip(seq, seq[1:])
             if a[2] == "CANCELLED" and b[0] > a[0] and b[1] == a[1]]
    assert moved, dict(by_symbol)
    # never two at once: at most one open list per symbol, only for a held position
    open_lists = [legs[0]["product_id"] for legs in lists.values() if any(o["status"] == "OPEN" for o in legs)]
    held = {s.replace("/", "-") for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert len(open_lists) == len(set(open_lists)) and set(open_lists) <= held
    said = _protections_alert(tmp_path)
    assert "trailing_stop placed on the exchange as stop_limit orders" in said
    assert "take_profit placed on the exchange with the stop as one OCO order list" in said


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["kraken", "binance", "coinbase"])
def test_a_take_profit_alone_rests_as_take_profit_limit_and_fills_on_a_rise(tmp_path, exchange):
    """Kraken take-profit-limit, Binance TAKE_PROFIT_LIMIT, Coinbase stop-limit STOP_UP."""
    state = _session(tmp_path, exchange, TAKE_ONLY)
    takes = _ours(state, exchange)
    assert takes, "the session should have placed take-profits on the exchange"
    for o in takes:  # a sell triggering on a rise, its limit at its trigger
        assert _is_take(o) and o["order_type"] == "STOP_LIMIT" and o["limit_price"] == o["stop_price"]
    rows = dict(state_rows(_db(tmp_path), "SELECT client_order_id, type FROM orders"))
    assert all(rows[o["cid"]] == "take_profit" for o in takes)
    filled = [o for o in takes if o["status"] == "FILLED" and _fill_rules(tmp_path, o["cid"])]
    assert filled, "a take-profit should have filled at the venue and been adopted"
    assert all(_fill_rules(tmp_path, o["cid"]) == ["protect:take_profit"] for o in filled)
    # the take-profit sells at its level or better, never by the loop (no market sell under its rule)
    for o in filled:
        price, = state_rows(_db(tmp_path), "SELECT price FROM fills WHERE client_order_id=?", (o["cid"],))[0]
        assert price >= o["limit_price"]
    assert not state_rows(_db(tmp_path), "SELECT 1 FROM orders WHERE type='market' AND rule='protect:take_profit'")
    resting = [o["product_id"] for o in takes if o["status"] == "OPEN"]
    assert len(resting) == len(set(resting))
    assert "take_profit placed on the exchange as take-profit-limit orders" in _protections_alert(tmp_path)


@pytest.mark.slow
def test_coinbase_bracket_rests_take_profit_and_stop_as_one_order_replaced_as_the_trail_rises(tmp_path):
    state = _session(tmp_path, "coinbase", PROTECT["coinbase"])
    brackets = [o for o in _ours(state, "coinbase") if "trigger_bracket_gtc" in o["order_configuration"]]
    assert brackets, "the session should have placed bracket orders"
    assert len(brackets) == len(_ours(state, "coinbase"))  # no separate stop: the bracket holds both levels
    rows = {r[0]: r[1:] for r in state_rows(_db(tmp_path), "SELECT client_order_id, type, rule, status, limit_price, "
                                            "stop_price FROM orders")}
    for o in brackets:  # a limit at the take-profit over a stop trigger, as recorded
        conf = o["order_configuration"]["trigger_bracket_gtc"]
        assert float(conf["limit_price"]) > float(conf["stop_trigger_price"])
        assert rows[o["cid"]][:2] == ("bracket", "protect:trailing_stop")
        assert (rows[o["cid"]][3], rows[o["cid"]][4]) == (float(conf["limit_price"]), float(conf["stop_trigger_price"]))
    filled = [o for o in brackets if o["status"] == "FILLED" and _fill_rules(tmp_path, o["cid"])]
    assert filled, "a bracket should have filled at the venue and been adopted"
    for o in filled:  # at or over its take-profit: the take-profit's rule; under it: the stop's
        price, rule = state_rows(_db(tmp_path), "SELECT price, rule FROM fills WHERE client_order_id=?", (o["cid"],))[0]
        assert rule == ("protect:take_profit" if price >= o["limit_price"] else "protect:trailing_stop")
    assert any(_fill_rules(tmp_path, o["cid"]) == ["protect:take_profit"] for o in filled)
    by_symbol = defaultdict(list)
    for o in sorted(brackets, key=lambda o: o["created_time"]):
        by_symbol[o["product_id"]].append((o["stop_price"], o["limit_price"], o["status"]))
    moved = [(a, b) for seq in by_symbol.values() for a, b in zip(seq, seq[1:])
             if a[2] == "CANCELLED" and b[0] > a[0] and b[1] == a[1]]
    assert moved, dict(by_symbol)
    resting = [o["product_id"] for o in brackets if o["status"] == "OPEN"]
    assert len(resting) == len(set(resting))
    said = _protections_alert(tmp_path)
    assert "take_profit placed on the exchange with the stop as one bracket order" in said


@pytest.mark.slow
def test_kraken_with_a_stop_rests_the_stop_and_the_loop_keeps_the_take_profit(tmp_path):
    state = _session(tmp_path, "kraken", BOTH)
    ours = _ours(state, "kraken")
    assert ours and not [o for o in ours if _is_take(o)]  # stops only: one open sell holds the base
    assert not state_rows(_db(tmp_path), "SELECT 1 FROM orders WHERE type='take_profit'")
    sold = state_rows(_db(tmp_path), "SELECT status FROM orders WHERE type='market' AND rule='protect:take_profit'")
    assert sold and {r[0] for r in sold} == {"filled"}, "the loop should have sold at a take-profit"
    said = _protections_alert(tmp_path)
    assert said.startswith("trailing_stop placed on the exchange as stop_limit orders; take_profit enforced by the loop")
    assert "kraken_sim spot holds the base of one resting sell and the stop rests" in said


def _groups_open(orders: list[dict]) -> list[str]:
    """The symbols with an open protection at the venue, once per resting group (a list counts once)."""
    seen, out = set(), []
    for o in orders:
        if o["status"] == "OPEN":
            key = o["list_id"] or o["cid"]
            if key not in seen:
                seen.add(key)
                out.append(o["product_id"])
    return sorted(out)


def _move_levels(tmp: Path, exchange: str, legs: set[str], how: str) -> None:
    """Edit the state file of a killed session before its restart, so the restart meets a known price
    against the unsent list (take-profit): ``between`` its levels (the stop halved, the take-profit
    doubled: it must be sent), or ``past`` its take-profit (halved, in the book's levels too: it must
    not be sent, and the loop sells at market under protect:take_profit); ``forgotten``: the rows of
    a sent one deleted (it must be adopted from the venue, never placed twice)."""
    marks = ",".join("?" * len(legs))
    with sqlite3.connect(_db(tmp)) as db:
        if how == "forgotten":
            db.execute(f"DELETE FROM orders WHERE client_order_id IN ({marks})", tuple(legs))
        elif how == "between":
            db.execute(f"UPDATE orders SET stop_price=ROUND(stop_price*0.5, 2), limit_price=ROUND(limit_price*0.5, 2) "
                       f"WHERE type='stop_limit' AND client_order_id IN ({marks})", tuple(legs))
            db.execute(f"UPDATE orders SET stop_price=stop_price*2, limit_price=limit_price*2 "
                       f"WHERE type='take_profit' AND client_order_id IN ({marks})", tuple(legs))
            db.execute(f"UPDATE orders SET stop_price=ROUND(stop_price*0.5, 2), limit_price=limit_price*2 "
                       f"WHERE type='bracket' AND client_order_id IN ({marks})", tuple(legs))
        else:
            db.execute(f"UPDATE orders SET limit_price=ROUND(limit_price*0.5, 2), stop_price=CASE type WHEN "
                       f"'take_profit' THEN ROUND(stop_price*0.5, 2) ELSE stop_price END "
                       f"WHERE type IN ('take_profit', 'bracket') AND client_order_id IN ({marks})", tuple(legs))
            sym, take = db.execute(f"SELECT symbol, limit_price FROM orders WHERE type IN ('take_profit', 'bracket') "
                                   f"AND client_order_id IN ({marks})", tuple(legs)).fetchone()
            j = json.loads(db.execute("SELECT value FROM meta WHERE key='session'").fetchone()[0])["symbols"].index(sym)
            prot = json.loads(db.execute("SELECT value FROM state WHERE key='protect'").fetchone()[0])
            # the levels as at entry (the kill came before the step saved them): from the entry price,
            # the take-profit where the row now says, any trailing stop far under the price
            entry, = db.execute("SELECT entry_price FROM positions WHERE symbol=?", (sym,)).fetchone()
            lv = prot["levels"]
            lv["high"][j], lv["take"][j] = entry, take
            if "trailing_stop" in PROTECT[exchange]:
                lv["trail_frac"][j] = 0.5
            db.execute("UPDATE state SET value=? WHERE key='protect'", (json.dumps(prot, sort_keys=True),))
        db.commit()


@pytest.mark.slow
@pytest.mark.parametrize("die_at, how", [("before_take_profit_send", "between"), ("before_take_profit_send", "past"),
                                         ("after_take_profit_send", None), ("after_take_profit_send", "forgotten")])
@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
def test_sigkill_around_sending_a_take_profit_leaves_exactly_one_after_restart(tmp_path, exchange, die_at, how):
    assert set(TAKE_DIE_AT) == {"before_take_profit_send", "after_take_profit_send"}
    # forgotten: wide levels, so that what rests at the venue is still open when the restart looks
    with_protect(tmp_path, PROTECT[exchange] if how != "forgotten" else PROTECT[exchange].replace("0.00", "0.0"))
    emu = EmulatorProcess(tmp_path, exchange=exchange)
    try:
        assert _run(tmp_path, emu, cycles=200, die_at=die_at) == -9, (tmp_path / "live.log").read_text()[-3000:]
        killed = [l for l in (tmp_path / "live.log").read_text().splitlines() if l.startswith("SIGKILL")][0].split()[-1]
        # recorded before it was sent, either way: an order list's two legs, or the one take-profit
        where = "list_id" if exchange == "binance" else "client_order_id"
        recorded = state_rows(_db(tmp_path), f"SELECT client_order_id, status, type FROM orders WHERE {where}=?", (killed,))
        assert sorted(r[1:] for r in recorded) == {"binance": [("new", "stop_limit"), ("new", "take_profit")],
                                                   "coinbase": [("new", "bracket")],
                                                   "kraken": [("new", "take_profit")]}[exchange]
        legs = {r[0] for r in recorded}
        at_exchange = [o for o in _ours(emu.dump(tmp_path / "before.json"), exchange) if o["cid"] in legs]
        assert len(at_exchange) == (0 if die_at == "before_take_profit_send" else len(legs))
        if how:
            _move_levels(tmp_path, exchange, legs, how)
        assert _run(tmp_path, emu, cycles=2) == 0, (tmp_path / "live.log").read_text()[-3000:]
        emu.freeze()
        state = emu.dump(tmp_path / "after.json")
        with emu.adapter(tmp_path) as ad:
            resting_at_venue = [s for s in ad.open_orders() if s.type in ("stop_limit", "take_profit", "bracket")]
            lists_at_venue = ad.open_lists()
        now = emu.dump(tmp_path / "now.json")
    finally:
        emu.close()
    ours = _ours(state, exchange)
    placed = [o for o in ours if o["cid"] in legs]
    fates = state_rows(_db(tmp_path), "SELECT status, reason, symbol FROM orders WHERE client_order_id IN "
                       f"({','.join('?' * len(legs))})", tuple(legs))
    alerts = [m for k, m in state_rows(_db(tmp_path), "SELECT kind, message FROM alerts") if k == "resend"]
    if how == "past":
        # the price is past the unsent take-profit after restart: never sent (the venue would refuse it
        # or it would take at once), abandoned, and the loop sold the position at market under its rule
        assert not placed and {f[0] for f in fates} == {"abandoned"}
        assert state_rows(_db(tmp_path), "SELECT rule, status FROM orders WHERE symbol=? AND type='market' AND "
                          "side='sell' AND rule='protect:take_profit'", (fates[0][2],)) == [("protect:take_profit", "filled")]
    else:  # placed once with the recorded ids: by the restart (said so), or before the kill
        assert sorted(o["cid"] for o in placed) == sorted(legs)
        # at the venue with the levels recorded (after a resend: the ones the restart met)
        assert sorted((o["cid"], o["limit_price"]) for o in placed) == sorted(state_rows(
            _db(tmp_path), "SELECT client_order_id, limit_price FROM orders WHERE client_order_id IN "
            f"({','.join('?' * len(legs))})", tuple(legs)))
        if exchange == "binance":
            assert len({o["list_id"] for o in placed}) == 1
        assert any(killed in m for m in alerts) == (die_at == "before_take_profit_send")
        adopted = [m for k, m in state_rows(_db(tmp_path), "SELECT kind, message FROM alerts") if k == "stop_adopted"]
        assert sorted(c for c in legs if any(c in m for m in adopted)) == (sorted(legs) if how == "forgotten" else [])
    # one protection per held position, at the venue and in the state file alike
    held = {s.replace("/", "-") for s, q in state_rows(_db(tmp_path), "SELECT symbol, qty FROM positions") if q > 0}
    assert _groups_open(ours) == sorted(held)
    open_rows = {r[0] for r in state_rows(_db(tmp_path), "SELECT client_order_id FROM orders WHERE type IN "
                                          "('stop_limit', 'take_profit', 'bracket') AND status='open'")}
    assert open_rows == {o["cid"] for o in ours if o["status"] == "OPEN"}
    # as the venue itself lists them (less any the bars after the loop's end filled)
    venue_holds = held_at_venue(now["balances"])
    per_symbol = defaultdict(set)
    for s in resting_at_venue:
        per_symbol[s.symbol].add(next((x["list"] for x in lists_at_venue if s.client_order_id in x["legs"]),
                                      s.client_order_id))
    assert sorted(per_symbol) == sorted(venue_holds) and all(len(v) == 1 for v in per_symbol.values())
    assert {s.client_order_id for s in resting_at_venue} <= open_rows
