"""Paper and dry_run fill with the backtest's fill model, participation cap included: what the cap
cuts is counted by the backtest's own counter (engine/sim/fills.py ``ParticipationCuts``), kept in
the account's state file across restarts, and reaches the session's results.json, its report's
warning box and a WARNING log line through the backtest's own diagnostic."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.live.shadow import stored_market
from engine.live.store import StateStore
from engine.modes.setup import load_rules
from engine.sim.settings import SimSettings
from tests.helpers.live import live_config, run_mode

TIGHT = "backtest.max_participation=0.0001"  # far under the emulator's bar volumes: most fills are cut
# golden: 12 step-mode cycles of the test strategy on the emulator (seed 7, 3 products)
CUT_12 = {"max_participation": 0.0001, "orders": 11, "cut": 8}
WARNING = ("the volume participation cap (backtest.max_participation = 0.0001) cut 8 of 11 fills: 80.3% of their "
           "notional (4052.51 of 5043.94), up to 93.9% of one order.")


def _session(tmp, mode, *extra, cycles=12):
    return run_mode(mode, tmp / "state", tmp / "out", *extra, cycles=cycles, speed=None)


def _counts(part: dict) -> dict:
    return {k: part[k] for k in CUT_12}


@pytest.mark.parametrize("mode", ["paper", "dry_run"])
def test_a_binding_cap_shows_in_the_session_results_report_and_log(tmp_path, caplog, mode):
    with caplog.at_level(logging.WARNING):
        results = _session(tmp_path, mode, TIGHT)
    part = results["participation"]
    assert _counts(part) == CUT_12
    assert part["cut_notional"] == pytest.approx(4052.514208913338, rel=1e-12)
    assert part["wanted_notional"] == pytest.approx(5043.942054490422, rel=1e-12)
    (d,) = [d for d in results["diagnostics"] if d["code"] == "participation_cap"]
    assert d["message"].startswith(WARNING)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["participation"] == part and d in on_disk["diagnostics"]
    assert WARNING in (tmp_path / "out" / "report.html").read_text()
    logged = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith("participation_cap:")]
    assert len(logged) == 1 and WARNING in logged[0].getMessage()
    if mode == "paper":  # each cut that still filled is an order row filled in part
        store = StateStore(tmp_path / "state" / "default-paper.sqlite")
        try:
            partly = store.rows("SELECT COUNT(*) AS n FROM orders WHERE reason LIKE 'partly filled%'")[0]["n"]
        finally:
            store.close()
        assert partly == part["cut"]


def test_a_cap_that_does_not_bind_shows_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        results = _session(tmp_path, "paper")  # the default cap, 0.1 of a bar's volume
    part = results["participation"]
    assert part["orders"] > 0 and part["cut"] == 0 and part["cut_notional"] == 0.0
    assert "participation_cap" not in [d["code"] for d in results["diagnostics"]]
    assert "participation cap" not in (tmp_path / "out" / "report.html").read_text()
    assert not [r for r in caplog.records if "participation_cap" in r.getMessage()]


def test_the_counts_survive_a_restart_and_equal_the_backtest_of_the_session_bars(tmp_path):
    first = _session(tmp_path, "dry_run", TIGHT, cycles=6)["participation"]
    assert 0 < first["cut"] < CUT_12["cut"]
    results = _session(tmp_path, "dry_run", TIGHT, cycles=6)  # the same account, restarted
    assert _counts(results["participation"]) == CUT_12  # 6 + 6 cycles count as 12 in one session do
    cfg = live_config("dry_run", tmp_path / "state", TIGHT, speed=None)
    store = StateStore(tmp_path / "state" / "default-dry_run.sqlite")
    try:
        ts = [c["t"] for c in store.rows("SELECT t FROM cycles ORDER BY t")]
        market = stored_market(store)
        cash = float(store.get("meta", "session")["initial_cash"])
    finally:
        store.close()
    # the backtest of the bars the session filled in (its last decision's bar is not filled yet)
    settings = dataclasses.replace(SimSettings.from_run_config(cfg), initial_cash=cash, start=ts[0], stop=ts[-1] + 1)
    back = run_backtest(prepare(market, load_rules(cfg)), settings).stats["participation"]
    assert back == results["participation"]
