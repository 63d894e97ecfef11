"""mode=shadow and mode=explain on a paper account's state file (not only dry_run's)."""
from __future__ import annotations

import sqlite3

import pytest

from engine import explain
from engine.errors import UserError
from engine.live.errors import LiveError
from engine.market.data import iso_utc
from engine.modes import parity, shadow
from tests.helpers.live import parity_config


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """A 20-cycle paper account on the step-mode emulator (kept by the parity harness)."""
    tmp = tmp_path_factory.mktemp("paper")
    state = tmp / "state"
    report = parity.run(parity_config(tmp), cycles=20, state_dir=state, modes=("paper",))
    assert report.differences == []
    return tmp, state


def _cfg(tmp, state, *extra):
    return parity_config(tmp, f"live.state_dir={state}", *extra)


def test_shadow_of_a_paper_account_has_zero_differences(paper, tmp_path):
    tmp, state = paper
    rep = shadow.run(_cfg(tmp, state, "mode=shadow", "mode.state=paper"), tmp_path, [], {})
    assert rep["mode"] == "paper" and rep["cycles"] == 20
    assert rep["differences"] == [], rep["differences"]
    assert rep["paper_fills"] == rep["backtest_fills"] == 10
    assert (tmp_path / "shadow.json").exists()


def test_shadow_of_a_paper_account_catches_a_changed_fill(paper, tmp_path):
    tmp, state = paper
    planted = tmp_path / "state"
    planted.mkdir()
    (planted / "default-paper.sqlite").write_bytes((state / "default-paper.sqlite").read_bytes())
    db = sqlite3.connect(str(planted / "default-paper.sqlite"))
    t, sym, side, price = db.execute("SELECT t, symbol, side, price FROM fills ORDER BY t, symbol LIMIT 1").fetchone()
    db.execute("UPDATE fills SET price = price * 1.01 WHERE t=? AND symbol=? AND side=?", (t, sym, side))
    db.commit()
    db.close()
    rep = shadow.run(_cfg(tmp, planted, "mode=shadow", "mode.state=paper"), tmp_path / "out", [], {})
    fills = [d for d in rep["differences"] if d["what"] == "fill"]
    assert [(d["t"], d["symbol"]) for d in fills] == [(t, f"{sym} {side}")]
    assert fills[0]["paper"][1] == price * 1.01 and fills[0]["backtest"][1] == price


def test_shadow_refuses_a_state_it_was_not_asked_for(paper, tmp_path):
    tmp, state = paper
    with pytest.raises(LiveError, match=r"no dry_run state file at .*default-dry_run\.sqlite"):
        shadow.run(_cfg(tmp, state, "mode=shadow"), tmp_path, [], {})


def test_explain_reads_a_paper_account_from_its_stored_trace(paper, capsys):
    tmp, state = paper
    db = sqlite3.connect(str(state / "default-paper.sqlite"))
    try:
        t, sym, ms = db.execute("SELECT d.t, d.symbol, b.time_ms FROM decisions d JOIN bars b ON b.t = d.t "
                                "WHERE d.side='buy' ORDER BY d.t LIMIT 1").fetchone()
        last_t, last_ms = db.execute("SELECT c.t, c.time_ms FROM cycles c ORDER BY c.t DESC LIMIT 1").fetchone()
    finally:
        db.close()
    cfg = _cfg(tmp, state, "mode=explain", "mode.state=paper", f"explain.symbol={sym}", f"explain.time={iso_utc(ms)}")
    text = explain.main(cfg)
    assert text.startswith(f"{sym} at {iso_utc(ms)} (bar {t}; orders decided here fill at the {iso_utc(ms + 60_000)} open)")
    assert f"outcome: BUY order sent; it fills at the {iso_utc(ms + 60_000)} open" in text
    # the newest cycle is explained too (its fill bar is not stored yet)
    newest = explain.main({**cfg, "explain": {**cfg["explain"], "time": iso_utc(last_ms)}})
    assert newest.startswith(f"{sym} at {iso_utc(last_ms)} (bar {last_t};")


def test_explain_on_an_account_with_no_state_file_says_so(tmp_path):
    cfg = _cfg(tmp_path, tmp_path / "none", "mode=explain", "mode.state=live", "explain.symbol=BTC/USDC",
               "explain.time=2024-01-02T09:30")
    with pytest.raises(UserError, match=r"mode.state=live: no state file at .*default-live\.sqlite"):
        explain.main(cfg)


def test_the_config_check_of_shadow_looks_for_the_account_mode_state_names(tmp_path):
    from engine.config import check_config

    state = tmp_path / "none"
    report = check_config(_cfg(tmp_path, state, "mode=shadow", "mode.state=paper"), mode="shadow", env={})
    found = [p for p in report.problems if p.code == "sanity.shadow_needs_dry_run_state"]
    assert [p.found for p in found] == [f"no file {state}/default-paper.sqlite"], report.format()
    assert "replays a paper account and there is none to replay" in found[0].message
