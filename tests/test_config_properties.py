"""Random mutations of a valid config never produce a traceback: only a clean report."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import ConfigReport, check_config, paths
from tests.helpers.configs import LIVE_ENV, leaf_paths, live_config, valid_config

BASES = {"backtest": valid_config(), "live": live_config()}
PATHS = {name: leaf_paths(cfg) for name, cfg in BASES.items()}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["???", "", "1h", "sample", "live", "BTC/USDC", "COINBASE_API_KEY", "-----BEGIN EC PRIVATE KEY-----"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3)),
    max_leaves=6)
keys = st.one_of(st.text(max_size=10), st.sampled_from(["cash", "commission", "max_exposure", "api_key", "password",
                                                        "seed", "params", "burn_in", "target"]))


@st.composite
def mutations(draw):
    base_name = draw(st.sampled_from(sorted(BASES)))
    cfg = copy.deepcopy(BASES[base_name])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS[base_name]))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            paths.put(cfg, path, draw(values))
        elif action == "delete":
            paths.pop(cfg, path)
        else:
            parent = paths.get(cfg, path)
            if isinstance(parent, dict):
                parent[draw(keys)] = draw(values)
    mode = draw(st.sampled_from(["backtest", "dry_run", "paper", "live", "shadow", "validate", "explain", "bogus"]))
    return cfg, mode


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(), st.booleans())
def test_mutations_give_a_clean_report(case, live_requirements):
    cfg, mode = case
    report = check_config(cfg, mode=mode, env=LIVE_ENV, live_requirements=live_requirements)
    assert isinstance(report, ConfigReport)
    assert "internal_error" not in report.codes(), report.format()
    text = report.format()
    assert isinstance(text, str)
    assert ("NOT valid" in text) == (not report.ok)


@settings(max_examples=50, deadline=None)
@given(values)
def test_any_document_gives_a_clean_report(doc):
    report = check_config(doc, mode="backtest", env={})
    assert "internal_error" not in report.codes()
    if not isinstance(doc, dict):
        assert not report.ok
