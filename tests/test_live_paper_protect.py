"""Paper and dry_run fill a strategy's protections as the backtest of their bars does: the same
engine/sim code (engine/sim/protect.py) on the stored bars, levels kept in the state file."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.live.shadow import stored_market
from engine.live.store import StateStore
from engine.modes.setup import load_rules
from engine.sim.settings import SimSettings
from tests.helpers.protect import locks_of_fills
from tests.helpers.live import active_rules_dir, live_config, run_mode

# tight levels on the emulator's 1m bars, so a short session fires them
PROTECT = "protect:\n  stop_loss: 0.004\n  take_profit: 0.006\n  trailing_stop: 0.003\n  time_stop: 6\n"


LOCKS = ("protections:\n  - {id: cooldown, type: cooldown, scope: symbol, lock_bars: 4}\n"
         "  - {id: theme_stop_outs, type: stop_outs, scope: theme, count: 2, window_bars: 10, lock_bars: 3}\n")


def _protected_rules(tmp: Path) -> None:
    path = active_rules_dir(tmp) / "strategies" / "sma_cross.yaml"
    path.write_text(path.read_text() + PROTECT)
    risk = active_rules_dir(tmp) / "risk.yaml"
    risk.write_text(risk.read_text() + LOCKS)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paper", "dry_run"])
def test_protections_fill_in_paper_and_dry_run_as_in_the_backtest_of_their_bars(tmp_path, mode):
    _protected_rules(tmp_path)
    state = tmp_path / "state"
    run_mode(mode, state, tmp_path / "out", cycles=30, speed=60.0)
    cfg = live_config(mode, state)
    store = StateStore(state / f"default-{mode}.sqlite")
    try:
        ts = [c["t"] for c in store.rows("SELECT t FROM cycles ORDER BY t")]
        live = {(int(r[0]), r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in
                store.db.execute("SELECT t, symbol, side, qty, price, fee, rule FROM fills").fetchall()}
        saved = store.get("state", "protect")
        portfolio = store.get("state", "portfolio")
        market = stored_market(store)
        meta = store.get("meta", "session")
    finally:
        store.close()
    settings = dataclasses.replace(SimSettings.from_run_config(cfg), initial_cash=float(meta["initial_cash"]),
                                   start=ts[0], stop=ts[-1] + 1)
    res = run_backtest(prepare(market, load_rules(cfg)), settings)
    back = {(f.t, market.symbols[f.symbol_idx], f.side): (f.qty, f.price, f.fee, f.rule) for f in res.fills}
    # the session filled protections up to its last decision bar (the backtest's last bar is that one)
    live = {k: v for k, v in live.items() if k[0] <= ts[-1]}
    assert any(v[3].startswith("protect:") for v in live.values()), json.dumps(sorted(live.items()))
    assert live == back
    assert saved["t"] == ts[-1] and saved["levels"] is not None
    # the scoped locks ran too: the session's state holds them, as the backtest's did
    assert portfolio["locks"] is not None
    assert portfolio["locks"]["until"] == locks_of_fills(res)
