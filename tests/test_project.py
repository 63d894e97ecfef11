"""User projects (engine/project.py, engine/paths.py, hydra_plugins/rulebook_project): the
project's conf/ first on Hydra's search path, its relative paths against its own folder."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from engine.api import Backtest, compose as compose_run
from engine.paths import BUILTIN_RULES, PROJECT_ENV, project_path, rule_folders
from engine.project import ProjectExistsError, init_project

SMALL = ["data.sample.n_symbols=30", "data.sample.n_bars=1500"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = init_project(tmp_path / "proj")
    monkeypatch.setenv(PROJECT_ENV, str(root))
    return root


def test_init_writes_conf_rules_and_a_readme(project):
    assert (project / "rules" / "strategies" / "sma_cross.yaml").read_text() == \
        (BUILTIN_RULES / "strategies" / "sma_cross.yaml").read_text()
    assert (project / "conf" / "experiment" / "mine.yaml").is_file()
    assert "What to edit" in (project / "README.md").read_text()
    assert "outputs/" in (project / ".gitignore").read_text()
    with pytest.raises(ProjectExistsError, match="already holds conf, rules, README.md"):
        init_project(project)


def test_project_conf_adds_and_replaces_options_and_the_rest_stays_built_in(project):
    (project / "conf" / "strategy").mkdir()
    (project / "conf" / "strategy" / "mine.yaml").write_text(
        "name: mine\nfile: strategies/sma_cross.yaml\nparams: {fast: 7, slow: 70, weight: 0.05, stop_loss: 0.1}\n")
    (project / "conf" / "risk").mkdir()
    (project / "conf" / "risk" / "balanced.yaml").write_text(
        (Path(__file__).parents[1] / "conf" / "risk" / "balanced.yaml").read_text().replace(
            "max_positions: 8", "max_positions: 3"))
    cfg = compose_run(["strategy=mine"])
    assert cfg.strategy.params.fast == 7                       # the project's new option
    assert cfg.risk.params.max_positions == 3                  # the project's file replaced the built-in
    assert cfg.exchange.name == "coinbase" and cfg.mode.name == "backtest"   # built-in groups
    mine = compose_run(["+experiment=mine"])                   # the experiment init wrote
    assert mine.strategy.params.fast == 24 and mine.backtest.initial_cash == 25000


def test_relative_paths_resolve_in_the_project(project, tmp_path, monkeypatch):
    assert project_path("state") == project / "state"
    assert rule_folders("rules").primary == project / "rules"
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    assert rule_folders("rules").primary == BUILTIN_RULES      # no rules/ of its own: the built-ins
    assert rule_folders("my_rules").primary == tmp_path / "empty" / "my_rules"


def test_a_run_reads_the_projects_edited_rule_file(project):
    f = project / "rules" / "strategies" / "sma_cross.yaml"
    f.write_text(f.read_text().replace("- id: golden_cross", "- id: edited_cross"))
    res = Backtest(overrides=SMALL).run()
    assert res.out_dir.is_relative_to(project / "outputs")
    assert set(res.fills["rule"]) & {"edited_cross"} and "golden_cross" not in set(res.fills["rule"])
    assert (project / ".cache" / "rulebook").is_dir()          # the sample market cached in the project


def test_other_hydra_apps_keep_their_own_search_path(project, tmp_path):
    other = tmp_path / "other_conf"
    other.mkdir()
    (other / "config.yaml").write_text("x: 1\n")
    (project / "conf" / "config.yaml").write_text("x: 2\n")  # would win if the plugin applied here
    with initialize_config_dir(version_base="1.3", config_dir=str(other)):
        assert compose(config_name="config").x == 1


def _only_own_strategy(project: Path) -> Path:
    """A project whose rules/ holds one file of its own: a copy of sma_cross under a new rule id."""
    import shutil
    shutil.rmtree(project / "rules")
    own = project / "rules" / "strategies" / "mine.yaml"
    own.parent.mkdir(parents=True)
    own.write_text((BUILTIN_RULES / "strategies" / "sma_cross.yaml").read_text()
                   .replace("- id: golden_cross", "- id: my_cross"))
    return own


def test_a_project_rules_folder_with_some_files_runs_the_built_ins_for_the_rest(project):
    from engine.paths import rule_file, rule_folders
    own = _only_own_strategy(project)
    assert rule_folders("rules").dirs == (project / "rules", BUILTIN_RULES)
    assert rule_file("rules", "strategies/mine.yaml") == own
    assert rule_file("rules", "regime.yaml") == BUILTIN_RULES / "regime.yaml"   # not in the project
    from engine.api import Validate
    assert Validate(overrides=["strategy.file=strategies/mine.yaml"]).run().ok
    res = Backtest(overrides=SMALL + ["strategy.file=strategies/mine.yaml"]).run()
    assert "my_cross" in set(res.fills["rule"])
    assert set(res.results["run"]["rule_files"]) >= {"rules/strategies/mine.yaml", "rules/regime.yaml"}


def test_a_file_in_neither_folder_is_missing_from_the_projects(project):
    from engine.api import Validate
    _only_own_strategy(project)
    report = Validate(overrides=["strategy.file=strategies/nope.yaml"]).run()
    assert not report.ok and len(report.problems) == 1, report.text
    assert "rule file 'strategies/nope.yaml' of strategy not found in rules_dir (rules)" in report.problems[0]
    assert f"a file under {project / 'rules'}" in report.problems[0]


def test_a_rules_dir_of_its_own_is_a_whole_set(project, tmp_path):
    from engine.paths import rule_file, rule_folders
    (project / "my_rules").mkdir()
    assert rule_folders("my_rules").dirs == (project / "my_rules",)             # nothing falls back
    assert rule_file("my_rules", "regime.yaml") == project / "my_rules" / "regime.yaml"
    assert rule_folders(tmp_path).dirs == (tmp_path,)


def test_a_projects_link_out_is_refused_not_passed_over_for_the_built_in(project, tmp_path):
    from engine.api import Validate
    (project / "rules" / "regime.yaml").unlink()
    (project / "rules" / "regime.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    (tmp_path / "elsewhere.yaml").write_text("kind: regime\n")
    report = Validate(overrides=[]).run()
    assert not report.ok and "leads outside" in report.text and str(tmp_path / "elsewhere.yaml") in report.text


def test_the_installed_command_finds_the_projects_conf_and_keeps_the_option_order(tmp_path):
    """Hydra lists hydra_plugins/ on sys.path to find plugins, which an editable install does not
    expose: the project's conf/ was silently ignored outside the source tree (engine.hydra_registry)."""
    from tests.helpers.runs import run_rulebook
    root = init_project(tmp_path / "proj")
    r = run_rulebook(["+experiment=mine", "--cfg", "job"], root, installed=True)   # an option after an override
    assert r.returncode == 0, r.stderr
    assert "fast: 24" in r.stdout and "initial_cash: 25000" in r.stdout  # the project's experiment
    r = run_rulebook(["+experiment=nope"], root, installed=True)
    assert r.returncode == 2 and "expected one of freqtrade, frictionless, mine" in r.stderr
