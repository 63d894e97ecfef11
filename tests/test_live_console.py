"""The operator's console on the command line: views of a paper session's state file, the
heartbeat (running vs a dead process), and operator actions the loop picks up at its next cycle."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from engine.live import controls
from engine.live.__main__ import main
from engine.live.console import status as views
from engine.live.store import StateStore, now_ms
from tests.helpers.live import run_mode


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    run_mode("paper", tmp / "state", tmp / "out", cycles=8)
    return tmp / "state" / "default-paper.sqlite"


def cli_json(capsys, *args) -> dict | list:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_json_matches_the_state_file(paper, capsys):
    s = cli_json(capsys, "status", "--state", str(paper))
    db = sqlite3.connect(str(paper))
    t, eq, cash = db.execute("SELECT t, equity, cash FROM cycles ORDER BY t DESC LIMIT 1").fetchone()
    n_pos = db.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
    db.close()
    assert s["mode"] == "paper" and s["last_cycle"]["t"] == t and s["last_cycle"]["n_cycles"] == 8
    assert s["heartbeat"]["running"] is False and s["heartbeat"]["state"] == "stopped"  # ended cleanly
    assert s["equity"] == eq and s["cash"]["USDC"] == pytest.approx(cash)
    assert s["last_cycle"]["cycle_ms"] > 0 and s["last_cycle"]["lag_ms"] is not None
    assert len(s["positions"]) == n_pos > 0, "the test strategy holds something after 8 cycles"
    # equity = cash + positions marked at the newest close
    assert s["equity"] == pytest.approx(cash + s["positions_value"], rel=1e-9)
    assert s["pnl"]["since_start"] == pytest.approx(eq - 10_000.0)
    assert s["burn_in"]["kind"] == "paper proof" and s["burn_in"]["cycles"] == 8 and s["burn_in"]["met"]
    assert any(a["kind"] == "burn_in" for a in s["alerts"])
    assert s["halts"] == {"risk": {}, "kill_switch": False, "entries_paused": False}


def test_positions_carry_unrealised_pnl_at_the_newest_close(paper, capsys):
    rows = cli_json(capsys, "positions", "--state", str(paper))
    st = StateStore.reader(paper)
    try:
        close = views.last_close(st, st.get("meta", "session")["symbols"])
        symbols = st.get("meta", "session")["symbols"]
    finally:
        st.close()
    for p in rows:
        px = close[symbols.index(p["symbol"])]
        assert p["price"] == pytest.approx(px)
        assert p["unrealised_pnl"] == pytest.approx(p["qty"] * (px - p["entry_price"]), rel=1e-9)


def test_pnl_windows_take_the_equity_before_the_window_opened(tmp_path, paper):
    f = tmp_path / "s.sqlite"
    f.write_bytes(paper.read_bytes())
    db = sqlite3.connect(str(f))
    # move the first three cycles to the previous week (Sunday), the fourth to the previous day
    rows = db.execute("SELECT t, time_ms, equity FROM cycles ORDER BY t").fetchall()
    day = 86_400_000
    last_ms = rows[-1][1]
    monday = (last_ms - 4 * day) // (7 * day) * (7 * day) + 4 * day
    for k, (t, _, _) in enumerate(rows[:3]):
        db.execute("UPDATE cycles SET time_ms=?, equity=? WHERE t=?", (monday - day + k, 9000.0 + k, t))
    db.execute("UPDATE cycles SET time_ms=?, equity=? WHERE t=?", (last_ms // day * day - 1, 9500.0, rows[3][0]))
    db.commit()
    db.close()
    st = StateStore.reader(f)
    try:
        p = views.pnl(st)
    finally:
        st.close()
    eq = rows[-1][2]
    if last_ms // day * day - 1 >= monday:  # the previous day is inside this week
        assert p["week"] == pytest.approx(eq - 9002.0)
    assert p["today"] == pytest.approx(eq - 9500.0)
    assert p["since_start"] == pytest.approx(eq - 10_000.0)


def plant_heartbeat(src, dst, **hb) -> None:
    dst.write_bytes(src.read_bytes())
    st = StateStore(dst)
    cur = st.get("state", "heartbeat")
    cur.update(hb)
    st.put("state", "heartbeat", cur)
    st.close()


def test_a_dead_loop_is_not_running_whatever_its_session_row_says(tmp_path, paper):
    f = tmp_path / "s.sqlite"
    wall = now_ms() - 60_000  # the loop last beat a minute ago and was due 50 s ago: killed
    plant_heartbeat(paper, f, status="running", wall_ms=wall, due_wall_ms=wall + 10_000)
    db = sqlite3.connect(str(f))
    db.execute("UPDATE sessions SET status='running', ended_wall_ms=NULL")  # what a SIGKILL leaves
    db.commit()
    db.close()
    st = StateStore.reader(f)
    try:
        hb = views.heartbeat(st)
    finally:
        st.close()
    assert hb["running"] is False and hb["state"].startswith("not running")


def test_a_fresh_heartbeat_is_running_and_late_when_the_next_bar_is_overdue(tmp_path, paper):
    f = tmp_path / "s.sqlite"
    st0 = StateStore.reader(paper)
    last_bar = st0.rows("SELECT time_ms FROM cycles ORDER BY t DESC LIMIT 1")[0]["time_ms"]
    st0.close()
    wall = now_ms()
    # on time: the clock is inside the bar after the last decided one
    plant_heartbeat(paper, f, status="running", wall_ms=wall, due_wall_ms=wall + 10_000, speed=1.0,
                    tf_ms=60_000, settle_ms=0, clock_ms=last_bar + 60_000 + 30_000)
    st = StateStore.reader(f)
    hb = views.heartbeat(st)
    st.close()
    assert hb["running"] and not hb["late"]
    # the next bar closed 10 minutes ago and no cycle decided on it: late
    plant_heartbeat(paper, f, status="running", wall_ms=wall, due_wall_ms=wall + 10_000, speed=1.0,
                    tf_ms=60_000, settle_ms=0, clock_ms=last_bar + 12 * 60_000)
    st = StateStore.reader(f)
    hb = views.heartbeat(st)
    st.close()
    assert hb["running"] and hb["late"] and hb["late_by_s"] == pytest.approx(600, abs=5)


def test_views_never_write(tmp_path, paper):
    f = tmp_path / "s.sqlite"
    f.write_bytes(paper.read_bytes())
    st = StateStore.reader(f)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            st.db.execute("DELETE FROM alerts")
    finally:
        st.close()


def test_human_views_and_bad_input(paper, capsys, tmp_path):
    assert main(["status", "--state", str(paper)]) == 0
    out = capsys.readouterr().out
    assert "state        stopped" in out and "positions" in out and "PnL" in out and "burn-in" in out
    for cmd in ("positions", "orders", "pnl", "alerts"):
        assert main([cmd, "--state", str(paper)]) == 0
        assert capsys.readouterr().out.strip()
    assert main(["status", "--state", str(tmp_path / "missing.sqlite")]) == 2
    assert "no state file" in capsys.readouterr().err


def test_why_answers_from_the_stored_trace(paper):
    st = StateStore.reader(paper)
    try:
        t, sym = st.db.execute("SELECT t, symbol FROM decisions WHERE side='buy' ORDER BY t LIMIT 1").fetchone()
        w = views.why(st, sym, t)
        assert w["bought"] and w["traded"] and w["decisions"][0]["side"] == "buy" and w["orders"]
        with pytest.raises(ValueError, match="not traded by this account"):
            views.why(st, "NOPE/USDC", t)
        with pytest.raises(ValueError, match="no cycle"):
            views.why(st, sym, 10**6)
    finally:
        st.close()


def test_pause_and_reload_are_recorded_and_picked_up_by_the_next_cycle(tmp_path, capsys):
    state = tmp_path / "state"
    run_mode("paper", state, tmp_path / "out", cycles=3)
    f = state / "default-paper.sqlite"
    assert main(["pause", "--state", str(f)]) == 0 and main(["reload", "--state", str(f)]) == 0
    capsys.readouterr()
    before = sqlite3.connect(str(f)).execute("SELECT MAX(t) FROM cycles").fetchone()[0]
    run_mode("paper", state, tmp_path / "out", cycles=6)
    db = sqlite3.connect(str(f))
    try:
        buys = db.execute("SELECT COUNT(*) FROM orders WHERE side='buy' AND t > ?", (before,)).fetchone()[0]
        log = db.execute("SELECT action, via, who, applied_wall_ms FROM control_log ORDER BY id").fetchall()
        reloaded = db.execute("SELECT COUNT(*) FROM alerts WHERE kind='rules_reloaded' AND t > ?", (before,)).fetchone()[0]
        wanted = sum(bool(json.loads(tr)["candidate"]) for (tr,) in db.execute("SELECT trace FROM cycles WHERE t > ?",
                                                                                (before,)))
    finally:
        db.close()
    assert wanted > 0, "the rules wanted to enter in these cycles (else the pause proves nothing)"
    assert buys == 0, "entries paused: no buy order"
    assert [(a, v) for a, v, _, _ in log] == [("pause", "cli"), ("reload", "cli")]
    assert all(w and applied for _, _, w, applied in log)
    assert reloaded == 1
    s = views.status(StateStore.reader(f))
    assert s["halts"]["entries_paused"] is True
    assert main(["resume", "--state", str(f)]) == 0
    assert views.halts(StateStore.reader(f)) == {"risk": {}, "kill_switch": False, "entries_paused": False}


def test_control_request_rejects_unknown_action(tmp_path):
    st = StateStore(tmp_path / "x.sqlite")
    try:
        with pytest.raises(ValueError, match="expected one of pause, resume, kill, reload"):
            controls.request(st, "sell_everything", "me", "cli")
    finally:
        st.close()
