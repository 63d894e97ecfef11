"""walkforward.search: optuna: a seeded ask-and-tell study per fold on its train window, repeats
run once and counted once (DSR, PBO), the report's search and trial counts, bad input (exit 2)."""
from __future__ import annotations

import json

import pytest

from engine.errors import UserError
from engine.research.optuna_fold import fold_seed, optuna_fold
from engine.research.walkforward import WalkForwardSpec
from engine.sweep.optuna_sweeper import OptunaSweeperError, distributions
from tests.helpers.runs import compose_config, exits_2_with_one_error, run_cli
from tests.helpers.walkforward import OPTUNA_WF, run_walkforward_mode, wf_overrides


def test_a_repeated_ask_is_evaluated_once():
    calls = []

    def evaluate(point):
        calls.append(point)
        return float(point["a"])

    asked = optuna_fold({"a": [1, 2]}, n_trials=6, seed=7, evaluate=evaluate)
    assert len(asked) == 6  # six asks of a two-point space: repeats by pigeonhole
    assert sorted(c["a"] for c in calls) == sorted({p["a"] for p, _ in asked})
    assert all(s == float(p["a"]) for p, s in asked)  # a repeat is told the same score


def test_an_undefined_score_is_a_failed_trial_and_the_study_goes_on():
    asked = optuna_fold({"a": [1, 2, 3]}, n_trials=4, seed=1, evaluate=lambda p: None)
    assert len(asked) == 4 and all(s is None for _, s in asked)


def test_the_same_seed_asks_the_same_points_and_folds_get_their_own_seed():
    space = {"a": list(range(20)), "b": ["x", "y", "z"]}
    run = lambda seed: [p for p, _ in optuna_fold(space, 8, seed, lambda p: float(p["a"]))]  # noqa: E731
    assert run(fold_seed(42, 1)) == run(fold_seed(42, 1))
    assert run(fold_seed(42, 1)) != run(fold_seed(42, 2))
    assert len({fold_seed(42, 1), fold_seed(42, 2), fold_seed(43, 1)}) == 3
    assert fold_seed(42, 1) == 3329053876  # numpy's SeedSequence: the same word on every platform


def test_a_list_of_values_is_a_categorical_choice_and_odd_values_are_refused():
    d, grid = distributions({"fast": [6, 12]}, name="walkforward.grid")
    assert list(d["fast"].choices) == [6, 12] and grid["fast"] == [6, 12]
    with pytest.raises(OptunaSweeperError, match=r"walkforward.grid.fast is \[\[1, 2\]\]; expected a non-empty list"):
        distributions({"fast": [[1, 2]]}, name="walkforward.grid")


def test_grid_stays_the_default_search():
    cfg = compose_config(wf_overrides())
    assert cfg["walkforward"]["search"] == "grid"
    assert WalkForwardSpec.from_config(cfg["walkforward"]).n_trials is None


def test_n_trials_below_one_is_refused_by_the_spec_too():
    wf = compose_config(OPTUNA_WF)["walkforward"]
    with pytest.raises(UserError, match=r"walkforward.n_trials is 0 with walkforward.search=optuna; expected a whole "
                                        r"number of trials per fold, at least 1"):
        WalkForwardSpec.from_config({**wf, "n_trials": 0})


@pytest.fixture(scope="module")
def optuna_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf_optuna")
    result = run_walkforward_mode(out, base=OPTUNA_WF)
    return out, result, json.loads((out / "walkforward.json").read_text())


def test_optuna_walkforward_is_byte_identical_run_to_run(optuna_run, tmp_path):
    out, _, _ = optuna_run
    run_walkforward_mode(tmp_path, base=OPTUNA_WF)
    assert (tmp_path / "walkforward.json").read_bytes() == (out / "walkforward.json").read_bytes()


def test_each_fold_chose_the_best_of_its_own_trials(optuna_run):
    _, _, doc = optuna_run
    space = doc["walkforward"]["grid"]
    assert len(doc["folds"]) == 3
    for f in doc["folds"]:
        assert f["chosen"] in f["trials"]
        assert f["params"] == doc["grid"][f["chosen"]]["params"]
        for i in f["trials"]:
            assert all(v in space[k] for k, v in doc["grid"][i]["params"].items())
        defined = [(s, pos) for pos, s in enumerate(f["scores"]) if s is not None]
        best = max(defined, key=lambda t: (t[0], -t[1]))[1]  # ties: the earliest ask
        assert f["trials"][best] == f["chosen"]
        # the score the choice rests on is the chosen point's train-window backtest
        assert f["scores"][best] == f["in_sample"]["sharpe"]
    assert len({f["sampler_seed"] for f in doc["folds"]}) == 3


def test_the_report_counts_trials_per_fold_and_distinct_points_for_the_statistics(optuna_run):
    out, result, doc = optuna_run
    wf, st = doc["walkforward"], doc["statistics"]
    assert (wf["search"], wf["n_trials"], wf["space_points"]) == ("optuna", 5, 9)
    for f in doc["folds"]:
        assert f["n_trials"] == len(f["trials"]) == len(f["scores"]) == 5
        assert f["n_distinct"] == len(set(f["trials"]))
    distinct = {i for f in doc["folds"] for i in f["trials"]}
    assert sorted(distinct) == list(range(len(doc["grid"]))) and wf["n_points"] == len(distinct)
    # TPE asked some point twice in this run: the statistics count it once
    assert any(f["n_distinct"] < f["n_trials"] for f in doc["folds"])
    assert st["deflated_sharpe"]["n_trials"] == len(distinct) < 3 * 5
    assert st["pbo"]["n_trials"] == len(distinct)
    html = (out / "walkforward.html").read_text()
    assert f"optuna search: 5 trials per fold, {len(distinct)} of 9 points tried" in html
    assert result["statistics"]["dsr"] == st["deflated_sharpe"]["dsr"]




def test_cli_n_trials_below_one_exit_2(tmp_path):
    r = run_cli([*OPTUNA_WF, "walkforward.n_trials=0", f"hydra.run.dir={tmp_path}"])
    exits_2_with_one_error(r, "walkforward.n_trials", "found: 0", ">= 1")


def test_cli_optuna_over_an_empty_space_exit_2(tmp_path):
    r = run_cli([*OPTUNA_WF, "~walkforward.grid.strategy.params", "+walkforward.grid.strategy.params={}",
                 f"hydra.run.dir={tmp_path}"])
    exits_2_with_one_error(r, "walkforward.search is optuna but walkforward.grid has no key to search")


def test_a_point_whose_lookback_exceeds_the_test_window_is_refused_when_first_asked(tmp_path):
    # test windows of 72 bars: every slow window of the space (48, 96, 144) but 48 reads too far back
    expected = (r"walkforward.test is '3d' \(72 bars\), shorter than the slowest rule's look-back: "
                r"crossover\(sma\(close, \d+\), sma\(close, (96|144)\)\) reads (96|144) bars "
                r"\(grid point strategy.params.fast=\d+, strategy.params.slow=(96|144)\)")
    with pytest.raises(UserError, match=expected):
        run_walkforward_mode(tmp_path, "walkforward.test=3d", "walkforward.n_trials=9", base=OPTUNA_WF)
