"""Every user mistake, Hydra's included, ends the same way: one ``error:`` line, exit code 2, no traceback.

Each case runs the real command in a subprocess; they all stop before any data is built.
"""
from __future__ import annotations

import pytest

from tests.helpers.runs import run_cli, run_rulebook


def one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["strategy.params.fastt=3"],
     "error: override 'strategy.params.fastt=3': strategy.params has no key 'fastt'; did you mean 'fast'?; "
     "expected an existing key, or +strategy.params.fastt=... to add one"),
    (["sed=3"], "error: override 'sed=3': the config has no top-level key 'sed'; did you mean 'seed'?"),
    (["strategy=smacross"],
     "error: override 'strategy=smacross': config group 'strategy' has no option 'smacross'; "
     "did you mean 'sma_cross'?; expected one of "),
    (["strategy.params.fast=[1,2"], "error: override 'strategy.params.fast=[1,2' is not valid override syntax (no viable alternative"),
    (["+seed=3"], "error: override '+seed=...': seed already exists; expected seed=... without the +"),
    (["mode=validate", "risk.params.max_positionz=3"],
     "error: override 'risk.params.max_positionz=3': risk.params has no key 'max_positionz'; "
     "did you mean 'max_positions'?"),
])
def test_hydra_mistakes_are_one_line_and_exit_2(tmp_path, args, expected):
    line = one_error_line(run_cli([*args, f"hydra.run.dir={tmp_path}"]))
    assert line.startswith(expected), line


@pytest.mark.parametrize("sweep, expected", [
    ("strategy.params.fastt=3,4", "did you mean 'fast'?"),
    ("strategy=sma_cross,smacross", "config group 'strategy' has no option 'smacross'; did you mean 'sma_cross'?"),
])
def test_a_sweep_reports_a_mistake_the_same_way(tmp_path, sweep, expected):
    line = one_error_line(run_cli(["-m", sweep, "data.sample.n_symbols=30", "data.sample.n_bars=1500",
                                   f"hydra.sweep.dir={tmp_path}"]))
    assert expected in line


@pytest.mark.parametrize("text, expected", [
    ("name: x\nparams:\n  fast: [1, 2\n",
     "error: conf/strategy/broken.yaml line 4 col 1: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence); expected valid YAML"),
    ("name: x\nfile: a.yaml\nname: y\n",
     "error: conf/strategy/broken.yaml line 3 col 1: key 'name' appears twice in one mapping; expected each key once"),
    ("name: x\n  bad: indent\n",
     "error: conf/strategy/broken.yaml line 2 col 6: mapping values are not allowed here; expected valid YAML"),
])
def test_a_broken_conf_file_names_file_line_and_column(tmp_path, text, expected):
    (tmp_path / "conf" / "strategy").mkdir(parents=True)
    (tmp_path / "conf" / "strategy" / "broken.yaml").write_text(text)
    line = one_error_line(run_rulebook(["strategy=broken", f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path))
    assert line == expected


def test_an_unresolvable_interpolation_in_an_override_is_a_config_error(tmp_path):
    line = one_error_line(run_cli(["seed=${oc.env:SOME_UNSET_VAR_20}", f"hydra.run.dir={tmp_path}"]))
    assert line.startswith("error: [interpolation] seed: cannot resolve 'seed'")
    assert "Environment variable 'SOME_UNSET_VAR_20' not found" in line
    assert not (tmp_path / "results.json").exists()


def test_config_check_problems_in_a_run_are_one_error_line_each(tmp_path):
    proc = run_cli(["strategy.params.fast=300", "backtest.initial_cash=-5", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        "error: [min] backtest.initial_cash: 'backtest.initial_cash' must be greater than 0 (found: -5 (integer); "
        "expected: > 0 (range: > 0 .. 1,000,000,000,000,000))",
        "error: [sanity.fast_window_not_below_slow] strategy.params.fast: the fast average must look back fewer "
        "bars than the slow one (found: 300; expected: < strategy.params.slow (240))"]


def test_validate_lists_the_same_lines_and_exits_2(tmp_path):
    proc = run_cli(["mode=validate", "strategy.params.fast=300", "backtest.initial_cash=-5", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert [line.split("]")[0] for line in lines[:2]] == ["error: [min", "error: [sanity.fast_window_not_below_slow"]
    assert lines[-1] == "config is NOT valid for mode=validate: 2 problem(s), 0 warning(s)"


def test_an_unresolvable_interpolation_in_validate_is_listed_not_a_traceback(tmp_path):
    # mode=validate lists every problem, each an error: line, and exits 2 as every mistake does
    proc = run_cli(["mode=validate", "seed=${oc.env:SOME_UNSET_VAR_20}", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "error: [interpolation] seed: cannot resolve 'seed'" in proc.stdout


def test_a_renamed_key_typed_on_the_command_line_is_migrated_with_its_warning(tmp_path):
    proc = run_cli(["mode=validate", "backtest.cash=5000", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("warning: [deprecated.renamed] backtest.cash: 'backtest.cash' is deprecated since 0.1.0, use "
            "'backtest.initial_cash'") in proc.stdout
    assert "config OK" in proc.stdout


def test_a_renamed_key_and_its_new_name_together_are_refused(tmp_path):
    line = one_error_line(run_cli(["backtest.cash=5000", "backtest.initial_cash=7000", f"hydra.run.dir={tmp_path}"]))
    assert line.startswith("error: [deprecated.conflict] backtest.cash")


def test_a_removed_key_typed_on_the_command_line_names_its_replacement(tmp_path):
    line = one_error_line(run_cli(["backtest.fee_bps=3", f"hydra.run.dir={tmp_path}"]))
    assert line.startswith("error: [deprecated.removed] backtest.fee_bps") and "exchange.fees.tiers" in line


def test_init_never_overwrites_a_project(tmp_path):
    assert run_rulebook(["init", str(tmp_path / "p")], cwd=tmp_path).returncode == 0
    line = one_error_line(run_rulebook(["init", str(tmp_path / "p")], cwd=tmp_path))
    assert "already holds conf, rules, README.md" in line
