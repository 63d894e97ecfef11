"""explain answers "why was SYMBOL (not) bought/sold at TIME" from a real backtest's outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.backtest.engine import BacktestSettings, run_backtest
from engine.sim.results import build_results
from engine.cycle.prepare import prepare
from engine.errors import UserError
from engine.explain import explain, main, parse_time
from engine.market.data import iso_utc
from engine.market.sample import SampleSpec, generate_sample_market
from tests.helpers.rules import SHIPPED_RULES, load_shipped

HOUR = 3_600_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small real backtest written the way mode=backtest writes it (trace.npz + results.json)."""
    out = tmp_path_factory.mktemp("run")
    market = generate_sample_market(SampleSpec(n_symbols=30, n_bars=1500))
    rules = load_shipped()
    p = prepare(market, rules)
    res = run_backtest(p, BacktestSettings())
    cfg = {"rules_dir": str(SHIPPED_RULES), "strategy": {"file": "strategies/sma_cross.yaml", "params": {}},
           "universe": {"file": "universe.yaml"}, "risk": {"file": "risk.yaml"}, "execution": {"file": "execution.yaml"}}
    results = build_results(res, {"config": cfg, "rule_files": rules.file_hashes})
    res.trace.save(out / "trace.npz")
    (out / "results.json").write_text(json.dumps(results, default=float))
    return out


def fills(run_dir: Path, side: str) -> list[dict]:
    return [f for f in json.loads((run_dir / "results.json").read_text())["trades"] if f["side"] == side]


def decision_time(fill: dict) -> str:
    return iso_utc(parse_time(fill["time"]) - HOUR)


def test_a_buy_is_explained_by_its_entry_rule(run_dir):
    f = fills(run_dir, "buy")[0]
    text = explain(run_dir, f["symbol"], decision_time(f))
    assert f"outcome: BUY order sent; it fills at the {f['time']} open" in text
    assert f"{f['rule']:<22} FIRES  - sma(48) crossed above sma(240)" in text
    assert "=> in the universe" in text and "entry candidate after signals and vetoes: yes" in text


def test_a_sell_is_explained(run_dir):
    f = fills(run_dir, "sell")[0]
    text = explain(run_dir, f["symbol"], decision_time(f))
    assert "SELL order sent" in text and "exit rules (any closes):" in text
    assert "position: holding" in text


def test_a_filtered_symbol_names_the_filter_and_its_message(run_dir):
    z = np.load(run_dir / "trace.npz")
    n = len(z["symbols"])
    spread = np.unpackbits(z["series:universe:tight_spread"], axis=1, count=n).astype(bool)
    avail = np.unpackbits(z["available"], axis=1, count=n).astype(bool)
    for t, i in np.argwhere(~spread[300:1400] & avail[300:1400]) + [300, 0]:
        text = explain(run_dir, str(z["symbols"][i]), iso_utc(int(z["times"][t])))
        if "position: flat" in text:
            break
    assert "tight_spread           FAIL  - spread wider than 40 bps" in text
    assert "outcome: not bought: filtered out by" in text and "tight_spread" in text.split("outcome:")[1]


def test_a_time_inside_a_bar_means_that_bar(run_dir):
    f = fills(run_dir, "buy")[0]
    t0 = parse_time(decision_time(f))
    assert explain(run_dir, f["symbol"], iso_utc(t0 + 30 * 60_000)) == explain(run_dir, f["symbol"], iso_utc(t0))


@pytest.mark.parametrize("symbol,time,message", [
    ("SOL/USDT", "2024-01-20T00:00", "explain.symbol 'SOL/USDT' is not in this run (did you mean SOL/USDC"),
    ("SOL/USDC", "2023-01-01T00:00", "explain.time '2023-01-01T00:00' is outside the run; expected a time between"),
    ("SOL/USDC", "yesterday", "explain.time is 'yesterday'; expected an ISO time"),
])
def test_bad_input_is_a_user_error(run_dir, symbol, time, message):
    with pytest.raises(UserError) as exc:
        explain(run_dir, symbol, time)
    assert message in str(exc.value)


def test_a_directory_without_a_trace_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="has no trace.npz"):
        explain(tmp_path, "SOL/USDC", "2024-01-20T00:00")


def test_main_prints_the_answer_and_checks_its_inputs(run_dir, capsys):
    f = fills(run_dir, "buy")[0]
    text = main({"explain": {"run_dir": str(run_dir), "symbol": f["symbol"], "time": decision_time(f)}})
    assert capsys.readouterr().out == text and "BUY order sent" in text
    with pytest.raises(UserError, match="mode=explain needs explain.symbol, explain.time"):
        main({"explain": {"run_dir": str(run_dir), "symbol": None, "time": None}})


def _without_run_config(run_dir, tmp_path):
    """A copy of the run directory whose results.json has no run config."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    results = json.loads((bare / "results.json").read_text())
    results["run"].pop("config")
    (bare / "results.json").write_text(json.dumps(results))
    return bare


def test_without_the_run_config_the_trace_alone_still_answers(run_dir, tmp_path):
    """No config in results.json: rule ids come from the trace and messages are left out."""
    bare = _without_run_config(run_dir, tmp_path)
    for side, outcome in (("buy", "BUY order sent"), ("sell", "SELL order sent")):
        f = fills(bare, side)[0]
        text = explain(bare, f["symbol"], decision_time(f))
        assert "the run's config is not in results.json" in text and f"outcome: {outcome}" in text


@pytest.mark.parametrize("name,damage", [
    ("trace.npz", lambda p: p.write_bytes(p.read_bytes()[:1000])),  # a copy cut short
    ("trace.npz", lambda p: p.write_bytes(b"")),
    ("results.json", lambda p: p.write_text(p.read_text()[:100])),
])
def test_a_damaged_run_dir_is_a_user_error(run_dir, tmp_path, name, damage):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    damage(broken / name)
    f = fills(run_dir, "buy")[0]
    with pytest.raises(UserError, match=f"explain.run_dir {broken}: {name} cannot be read"):
        explain(broken, f["symbol"], decision_time(f))


def test_a_per_cycle_veto_that_blocked_every_entry_is_named(tmp_path):
    """A portfolio veto false for every symbol leaves no trace event; once the symbol's entry
    fired the veto was evaluated, so explain must name it, not say "no entry rule fired"."""
    from tests.helpers.rules import edit_rule_file

    root = edit_rule_file(tmp_path, "risk.yaml", "vetoes:\n",
                          "vetoes:\n  - id: never\n    when: portfolio.n_positions < 0\n    why: no entries at all\n")
    rules = load_shipped(root)
    res = run_backtest(prepare(generate_sample_market(SampleSpec(n_symbols=30, n_bars=800)), rules),
                       BacktestSettings())
    cfg = {"rules_dir": str(root), "strategy": {"file": "strategies/sma_cross.yaml", "params": {}},
           "universe": {"file": "universe.yaml"}, "risk": {"file": "risk.yaml"}, "execution": {"file": "execution.yaml"}}
    out = tmp_path / "run"
    out.mkdir()
    res.trace.save(out / "trace.npz")
    (out / "results.json").write_text(json.dumps(build_results(res, {"config": cfg, "rule_files": rules.file_hashes}),
                                                 default=float))
    z = np.load(out / "trace.npz")
    n = len(z["symbols"])
    fired = np.unpackbits(z["series:entry:golden_cross"], axis=1, count=n).astype(bool)
    fired &= np.unpackbits(z["universe"], axis=1, count=n).astype(bool)
    t, i = next((t, i) for t, i in np.argwhere(fired) if 250 < t < 790)
    text = explain(out, str(z["symbols"][i]), iso_utc(int(z["times"][t])))
    assert "golden_cross           FIRES" in text
    assert "never                  VETO  - no entries at all" in text
    assert "outcome: not bought: vetoed by never" in text


def test_without_the_run_config_a_per_cycle_guard_block_is_still_named(run_dir, tmp_path):
    """Guards reading the order (min_notional...) have no series in the trace, only block events."""
    bare = _without_run_config(run_dir, tmp_path)
    z = np.load(bare / "trace.npz")
    t, i = int(z["events_t:block:min_notional"][0]), int(z["events_idx:block:min_notional"][0])
    with_cfg = explain(run_dir, str(z["symbols"][i]), iso_utc(int(z["times"][t])))
    text = explain(bare, str(z["symbols"][i]), iso_utc(int(z["times"][t])))
    assert "min_notional           BLOCKED" in with_cfg
    assert "min_notional           BLOCKED" in text
    assert text.split("outcome:")[1] == with_cfg.split("outcome:")[1]
