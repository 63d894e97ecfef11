"""conf/ lists every rule param so Hydra overrides reach it (`strategy.params.fast=12`); the
defaults themselves live in the rule files. These tests keep the two from drifting apart."""
from __future__ import annotations

import pytest
import yaml

from engine.paths import PROJECT_ROOT

CONF, RULES = PROJECT_ROOT / "conf", PROJECT_ROOT / "rules"

# the conf option that stands for the rule file's own defaults
DEFAULT_OPTIONS = ["regime/default", "regime/daily", "strategy/mean_reversion", "strategy/sma_cross", "strategy/momentum", "universe/default", "execution/default", "risk/balanced"]


def _conf(option: str) -> dict:
    return yaml.safe_load((CONF / f"{option}.yaml").read_text())


def _rule_params(conf_doc: dict) -> dict:
    return yaml.safe_load((RULES / conf_doc["file"]).read_text())["params"]


@pytest.mark.parametrize("option", DEFAULT_OPTIONS)
def test_default_option_equals_rule_file_defaults(option):
    doc = _conf(option)
    assert doc["params"] == _rule_params(doc)


@pytest.mark.parametrize("option", sorted(str(p.relative_to(CONF).with_suffix(""))
                                          for g in ("regime", "strategy", "universe", "execution", "risk")
                                          for p in (CONF / g).glob("*.yaml")))
def test_every_option_lists_exactly_the_rule_file_params(option):
    doc = _conf(option)
    assert set(doc["params"]) == set(_rule_params(doc))
