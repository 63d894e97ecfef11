"""dry_run, paper and live each run against the in-process emulator; the shadow comparison."""
from __future__ import annotations

import json
import sqlite3

import pytest

from engine.live.errors import LiveError
from engine.modes.shadow import compare
from engine.live.store import StateStore
from engine.modes.setup import load_rules
from tests.helpers.live import live_config, run_mode, state_rows
from tests.helpers.wait import wait_until


def q(path, sql):
    return state_rows(path, sql)


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dry")
    res = run_mode("dry_run", tmp / "state", tmp / "out", cycles=12)
    return tmp, res


def test_dry_run_places_nothing_and_writes_the_backtest_report(dry):
    tmp, res = dry
    db = tmp / "state" / "default-dry_run.sqlite"
    assert q(db, "SELECT COUNT(*) FROM orders")[0][0] == 0
    assert q(db, "SELECT COUNT(*) FROM cycles")[0][0] >= 12
    assert (tmp / "out" / "results.json").exists() and (tmp / "out" / "report.html").exists()
    assert res["run"]["mode"] == "dry_run" and res["metrics"]["n_bars"] >= 12


def test_shadow_replay_of_a_clean_dry_run_has_zero_differences(dry):
    tmp, _ = dry
    cfg = live_config("dry_run", tmp / "state", cycles=12)
    store = StateStore(tmp / "state" / "default-dry_run.sqlite")
    try:
        rep = compare(store, load_rules(cfg), cfg)
    finally:
        store.close()
    assert rep["cycles"] >= 12
    assert rep["backtest_fills"] == rep["dry_run_fills"] > 0, "the test strategy should trade in 12 bars"
    assert rep["differences"] == []


def test_shadow_catches_a_planted_divergence(dry, tmp_path):
    tmp, _ = dry
    src = tmp / "state" / "default-dry_run.sqlite"
    planted = tmp_path / "default-dry_run.sqlite"
    planted.write_bytes(src.read_bytes())
    # the live side decided differently once: one recorded buy it did not actually decide
    t, sym = q(planted, "SELECT t, symbol FROM decisions WHERE side='buy' ORDER BY t LIMIT 1")[0]
    db = sqlite3.connect(str(planted))
    db.execute("DELETE FROM decisions WHERE t=? AND symbol=? AND side='buy'", (t, sym))
    db.commit()
    db.close()
    cfg = live_config("dry_run", tmp / "state", cycles=12)
    store = StateStore(planted)
    try:
        rep = compare(store, load_rules(cfg), cfg)
    finally:
        store.close()
    assert {"t": t, "what": "buy", "symbol": sym, "dry_run": False, "backtest": True}.items() <= \
        {k: v for d in rep["differences"] if d["t"] == t and d["what"] == "buy" for k, v in d.items()}.items()


def test_shadow_catches_stale_quote_divergence(tmp_path):
    # quotes count as stale at once: the dry_run blocks every order the backtest sends
    run_mode("dry_run", tmp_path / "state", tmp_path / "out", "live.max_quote_age_s=-1", cycles=10)
    cfg = live_config("dry_run", tmp_path / "state", cycles=10)
    store = StateStore(tmp_path / "state" / "default-dry_run.sqlite")
    try:
        rep = compare(store, load_rules(cfg), cfg)
        alerts = store.rows("SELECT kind FROM alerts WHERE kind='stale_quote'")
    finally:
        store.close()
    assert alerts, "blocked orders raise a stale_quote alert"
    assert rep["n_differences"] > 0 and rep["dry_run_fills"] == 0


def test_paper_account_persists_across_restarts_and_live_needs_it(tmp_path):
    state = tmp_path / "state"
    with pytest.raises(LiveError, match="no passing paper session"):
        run_mode("live", state, tmp_path / "live0", cycles=2)
    run_mode("paper", state, tmp_path / "p1", cycles=4)
    paper = state / "default-paper.sqlite"
    fills1 = q(paper, "SELECT COUNT(*) FROM fills")[0][0]
    cash1 = q(paper, "SELECT amount FROM cash")[0][0]
    # the first session must trade, or the cash check below cannot tell a kept account from a reset one
    assert fills1 > 0 and cash1 != 10_000, "the test strategy should trade in the first 4 paper cycles"
    res = run_mode("paper", state, tmp_path / "p2", cycles=4)
    assert [s for s in res["live"]["sessions"] if s["status"] == "passed"]
    assert q(paper, "SELECT COUNT(*) FROM fills")[0][0] >= fills1
    buys = q(paper, "SELECT COALESCE(SUM(qty*price+fee),0) FROM fills WHERE side='buy'")[0][0]
    sells = q(paper, "SELECT COALESCE(SUM(qty*price-fee),0) FROM fills WHERE side='sell'")[0][0]
    assert q(paper, "SELECT amount FROM cash")[0][0] == pytest.approx(10_000 - buys + sells, rel=1e-9)
    # with a passing paper session recorded, live starts and trades under burn-in caps
    res = run_mode("live", state, tmp_path / "live1", "live.burn_in.max_order_notional=200", cycles=6)
    live = state / "default-live.sqlite"
    sent = q(live, "SELECT qty, avg_price, side FROM orders WHERE status='filled'")
    buys = [qty * px for qty, px, side in sent if side == "buy"]
    assert buys, "live should have bought on the emulator"
    assert max(buys) <= 200 * 1.01
    assert q(live, "SELECT COUNT(*) FROM orders GROUP BY client_order_id HAVING COUNT(*) > 1") == []


def test_kill_switch_file_halts_entries(tmp_path):
    flag = tmp_path / "KILL"
    flag.write_text("stop")
    run_mode("paper", tmp_path / "state", tmp_path / "out", f"live.kill_switch_file={flag}", cycles=5)
    db = tmp_path / "state" / "default-paper.sqlite"
    # the rules wanted entries (candidates that passed every rule), so no buy is the kill switch's doing
    wanted = [json.loads(trace)["candidate"] for trace, in q(db, "SELECT trace FROM cycles")]
    assert any(wanted), "the test strategy should want to buy in 5 cycles"
    assert q(db, "SELECT COUNT(*) FROM orders WHERE side='buy'")[0][0] == 0
    assert q(db, "SELECT COUNT(*) FROM alerts WHERE kind='kill_switch'")[0][0] == 1


def test_a_broken_rule_edit_mid_run_keeps_the_loop_going_and_is_recorded(tmp_path):
    import threading
    state = tmp_path / "state"
    path = tmp_path / "rules" / "strategies" / "sma_cross.yaml"
    db = state / "default-paper.sqlite"
    failed: list[BaseException] = []

    def cycles() -> int:
        try:
            return db.exists() and q(db, "SELECT COUNT(*) FROM cycles")[0][0]
        except sqlite3.OperationalError:  # the file exists but its tables are being created
            return 0

    def break_after_first_cycle():
        try:
            wait_until(cycles, 60, "the paper session's first cycle")
            path.write_text(path.read_text().replace("when: crossover(", "when: crossover_typo("))
        except BaseException as e:  # re-raised in the test's thread
            failed.append(e)

    live_config("paper", state)  # creates the rules copy
    th = threading.Thread(target=break_after_first_cycle)
    th.start()
    res = run_mode("paper", state, tmp_path / "out", cycles=4)
    th.join(timeout=60)
    assert not th.is_alive() and not failed, failed
    assert q(db, "SELECT COUNT(*) FROM cycles")[0][0] >= 4  # the loop kept running on the previous rules
    rejected = q(db, "SELECT file, sha256, error FROM rule_versions WHERE status='rejected'")
    assert len(rejected) == 1 and rejected[0][0] == "rules/strategies/sma_cross.yaml" and "crossover_typo" in rejected[0][2]
    assert q(db, "SELECT COUNT(*) FROM alerts WHERE kind='rules_rejected' AND level='error'")[0][0] == 1
    assert res["live"]["sessions"][-1]["status"] == "ended_with_errors"
