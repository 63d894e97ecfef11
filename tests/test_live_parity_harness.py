"""The parity harness (engine/modes/parity.py): a dry_run and a paper session on the step-mode
emulator, each replayed as a backtest over its stored bars, compared exactly. A clean session
shows zero differences; each planted divergence is reported naming the mode, symbol, bar and field."""
from __future__ import annotations

import dataclasses
import json

import pytest

from engine.errors import UserError
from engine.live import feed, loop
from engine.modes import parity
from engine.modes.parity import Difference
from tests.helpers.live import active_rules_dir, parity_config, parity_overrides

LIMIT = "order: {type: limit, offset_bps: 3}"


def _limit_rules(where) -> None:
    path = active_rules_dir(where) / "execution.yaml"
    text = path.read_text()
    assert "order: {type: market}" in text
    path.write_text(text.replace("order: {type: market}", LIMIT))


def test_the_command_shows_zero_differences_on_a_clean_session(tmp_path, capsys):
    out = tmp_path / "parity.json"
    rc = parity.main(["--cycles", "30", "--out", str(out), "--", *parity_overrides(tmp_path)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    assert report["n_differences"] == 0
    got = {s["mode"]: (s["cycles"], s["counts"]) for s in report["sessions"]}
    # golden: the emulator (seed 7) and the test strategy trade in both sessions, so a pass means agreement
    assert got == {"dry_run": (30, {"decisions": 22, "orders": 0, "fills": 21, "backtest_fills": 21}),
                   "paper": (30, {"decisions": 22, "orders": 22, "fills": 21, "backtest_fills": 21})}
    assert "parity paper: 30 cycles 2024-01-02T09:21:00Z .. 2024-01-02T09:50:00Z, 22 decisions, 22 orders, " \
           "21 fills; 0 difference(s)" in printed


def test_a_theme_table_missing_in_live_is_caught_naming_symbol_bar_and_field(tmp_path, monkeypatch):
    """Planted: the live feed combines the exchange's facts with a product table that lost its
    themes (every product `other`, the bug this issue fixed); the backtest reads the table."""
    combine = feed.symbol_infos
    monkeypatch.setattr(feed, "symbol_infos", lambda m, s, facts: combine(m, s, dataclasses.replace(facts, themes={})))
    report = parity.run(parity_config(tmp_path, products=8), cycles=15)
    for mode in ("dry_run", "paper"):
        diffs = [d for d in report.differences if d.mode == mode]
        assert Difference(mode, "product", 60, "2024-01-02T09:21:00Z", "DOGE/USDC", None, "theme", "other", "meme") in diffs
        assert Difference(mode, "product", 60, "2024-01-02T09:21:00Z", "LINK/USDC", None, "theme", "other", "oracle") in diffs
        # and its effect: the theme cap clips LTC (payments) as if it shared one theme with the L1s
        assert Difference(mode, "decision", 71, "2024-01-02T09:32:00Z", "LTC/USDC", "buy", "qty",
                          11.78096, 12.192200000000001) in diffs
        assert Difference(mode, "trace", 71, "2024-01-02T09:32:00Z", "LTC/USDC", None, "clip:per_theme",
                          True, False) in diffs
        assert not [d for d in diffs if d.t < 71 and d.what != "product"], "nothing differs before the first clip"


def test_a_limit_order_sent_as_market_is_caught_naming_symbol_bar_and_field(tmp_path, monkeypatch):
    """Planted: paper records and sends every order as a market order (the bug this issue fixed)."""
    _limit_rules(tmp_path)
    record = loop.Session._order_rows

    def as_market(self, d, t, bar_ms, db):
        rows = record(self, d, t, bar_ms, db)
        db.execute("UPDATE orders SET type='market', limit_price=NULL WHERE t=?", (t,))
        return [dataclasses.replace(o, type="market", limit_price=None) for o in rows]

    monkeypatch.setattr(loop.Session, "_order_rows", as_market)
    report = parity.run(parity_config(tmp_path), cycles=12)
    dry, paper = report.sessions
    assert dry.mode == "dry_run" and dry.differences == [], "dry_run places no order: the plant cannot reach it"
    assert paper.differences[:4] == [
        Difference("paper", "order", 60, "2024-01-02T09:21:00Z", "SOL/USDC", "buy", "limit_price", None, 168.53249907602984),
        Difference("paper", "order", 60, "2024-01-02T09:21:00Z", "SOL/USDC", "buy", "type", "market", "limit"),
        Difference("paper", "fill", 61, "2024-01-02T09:22:00Z", "SOL/USDC", "buy", "fee", 12.003910122706081, 5.998196356165218),
        Difference("paper", "fill", 61, "2024-01-02T09:22:00Z", "SOL/USDC", "buy", "price", 168.63810815265543, 168.53249907602984),
    ]
    assert str(paper.differences[1]) == ("paper order SOL/USDC buy at bar 60 (2024-01-02T09:21:00Z): type: "
                                         "paper='market' backtest='limit'")


@pytest.mark.parametrize("extra, message", [
    (["backtest.slippage.noise_bps=2"], "backtest.slippage.noise_bps is 2.0; the parity harness compares fills exactly"),
    (["exchange.emulator.autostart=false"], "exchange 'local_sim' starts no in-process emulator; the parity harness runs against one"),
])
def test_a_config_the_harness_cannot_compare_exactly_is_refused(tmp_path, extra, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parity.session_config(parity_config(tmp_path, *extra), "paper", tmp_path / "state", 5)


@pytest.mark.parametrize("args, message", [
    (["--cycles", "1"], "error: --cycles is 1; expected >= 2"),
    (["--", "exchange=nowhere"], "error: In 'config': Could not find 'exchange/nowhere'"),
    (["--", "backtest.slippage.noise_bps=2"], "error: backtest.slippage.noise_bps is 2.0; the parity harness"),
    (["--", "risk.params.max_total_exposure=3"], "error: the config is not valid for mode=dry_run:"),
])
def test_the_command_refuses_bad_input_with_one_message_and_exit_code_2(args, message, capsys):
    assert parity.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert "Traceback" not in err


def test_the_step_clock_moves_the_emulator_to_the_bar_close_at_once():
    from engine.exchange.emulator import CoinbaseEmulator
    from engine.live.clock import StepClock

    clock = StepClock(CoinbaseEmulator(products=1, speed=None))
    start = clock.now_ms()
    clock.sleep_until(start + 3 * 60_000 - 1, lambda: False)  # rounds up to whole steps
    assert clock.now_ms() == start + 3 * 60_000
    clock.sleep_until(start, lambda: False)  # already there: nothing moves
    clock.sleep_until(start + 10 * 60_000, lambda: True)  # a stop request: nothing moves
    assert clock.now_ms() == start + 3 * 60_000


def test_the_step_clock_needs_an_in_process_emulator_in_step_mode():
    from types import SimpleNamespace

    from engine.live.errors import LiveError
    from engine.live.settings import LiveSettings
    from engine.modes.live import make_clock

    with pytest.raises(LiveError, match="live.clock=step moves the in-process emulator's market bar by bar"):
        make_clock(LiveSettings(clock="step"), None, SimpleNamespace(emulator=None))
