"""run.py end to end: outputs, determinism, clear errors for bad input."""
from __future__ import annotations

import json

import pytest

from tests.helpers.runs import run_cli

SMALL = ["data.sample.n_symbols=30", "data.sample.n_bars=2000"]


@pytest.mark.slow
def test_same_seed_gives_byte_identical_results(tmp_path):
    outs = []
    for name in ("a", "b"):
        r = run_cli([*SMALL, f"hydra.run.dir={tmp_path / name}"])
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / name / "results.json").read_bytes())
    assert outs[0] == outs[1]
    results = json.loads(outs[0])
    assert results["run"]["seed"] == 42
    assert len(results["run"]["data_hash"]) == 64
    for key in ("final_equity", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades",
                "win_rate", "profit_factor", "exposure", "fees_paid", "slippage_cost"):
        assert key in results["metrics"]
    assert (tmp_path / "a" / "report.html").stat().st_size > 10_000


@pytest.mark.slow
def test_overrides_reach_rule_params_and_profiles(tmp_path):
    r = run_cli([*SMALL, "strategy=sma_cross", "strategy.params.fast=12", "risk=aggressive",
                 f"hydra.run.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "results.json").read_text())["run"]["config"]
    assert cfg["strategy"]["params"]["fast"] == 12
    assert cfg["risk"]["params"]["max_position_weight"] == 0.2


@pytest.mark.slow
def test_slippage_none_compares_against_fills_without_slippage(tmp_path):
    runs = {}
    for name, extra in (("default", []), ("none", ["slippage=none"])):
        r = run_cli([*SMALL, *extra, f"hydra.run.dir={tmp_path / name}"])
        assert r.returncode == 0, r.stderr
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert runs["default"]["run"]["config"]["backtest"]["slippage"]["model"] == "spread_impact"
    assert runs["none"]["run"]["config"]["backtest"]["slippage"]["model"] == "none"
    assert runs["default"]["metrics"]["slippage_cost"] > 0
    assert runs["none"]["metrics"]["slippage_cost"] == 0
    assert runs["none"]["trades"] and all(t["slippage"] == 0 for t in runs["none"]["trades"])


@pytest.mark.slow
@pytest.mark.parametrize("args, needle, code", [
    # Hydra's own findings are reported in rulebook's format and exit code (tests/test_cli_errors.py)
    (["strategy=nope"], "config group 'strategy' has no option 'nope'", 2),
    (["strategy.params.fsat=3"], "did you mean 'fast'?", 2),
    (["+strategy.params.fsat=3"], "[unknown_param] strategy.params.fsat", 2),
    (["strategy.params.fast=0"], "strategy.params.fast' must be at least 1", 2),
    (["data=csv"], "data.path", 2),
])
def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, args, needle, code):
    base = [] if "data=csv" in args else SMALL
    r = run_cli([*base, *args, f"hydra.run.dir={tmp_path}"])
    assert r.returncode == code, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_broken_rule_file_names_file_rule_and_position(tmp_path):
    import shutil

    from engine.paths import PROJECT_ROOT

    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    f = rules / "strategies" / "sma_cross.yaml"
    f.write_text(f.read_text().replace("crossover(sma(close, params.fast)", "crossover(sma(close, 0)"))
    r = run_cli([*SMALL, f"rules_dir={rules}", f"hydra.run.dir={tmp_path / 'out'}"])
    assert r.returncode == 2
    assert "rules/strategies/sma_cross.yaml" in r.stderr and "rule 'golden_cross'" in r.stderr
    assert "window 'n' of sma() is 0" in r.stderr and "line 1 col 22" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", ["run_dir", "cache_dir", "output_file"])
def test_broken_environment_is_one_clear_message(tmp_path, case):
    """A run dir or cache dir that cannot be created, an output that cannot be written: one
    line naming the path, exit 2, no traceback and no half-written output."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run_dir, args = tmp_path / "run", []
    if case == "run_dir":
        run_dir = blocker / "run"
    elif case == "cache_dir":
        args = [f"data.cache_dir={blocker}"]
    else:
        (run_dir / "results.json").mkdir(parents=True)  # like a full disk: this file cannot be written
    r = run_cli([*SMALL, *args, f"hydra.run.dir={run_dir}"])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert str(blocker if case != "output_file" else run_dir / "results.json") in r.stderr
    assert not list(tmp_path.rglob("*.tmp"))
