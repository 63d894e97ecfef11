"""mode=validate answers what a run would (issue 21): for generated hostile configs, validate says
"config OK" exactly when a backtest starts without a user error, and when both refuse they name
the same problems. The classes: NaN and infinity, counts and windows out of bounds, backtest windows
around the data's span, sample settings off their grid or too short, theme caps (names, an empty
mapping that would silently merge), params the schema does not know."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.runs import start_verdict, validate_verdict

NON_FINITE = st.sampled_from(["nan", "inf", "-inf"])
DATES = st.sampled_from(["2023-12-01", "2024-01-01", "2024-01-02T05:00", "2024-01-03", "2024-01-05T00:30",
                         "2024-01-13", "2024-03-01", "2030-01-01", "2024-02-30"])
SETTINGS = {  # key -> the values tried (as typed on the command line)
    "backtest.slippage.impact_coef": st.one_of(NON_FINITE, st.sampled_from(["0.1", "100", "101", "-1"])),
    "backtest.initial_cash": st.one_of(NON_FINITE, st.sampled_from(["10000", "0", "1e16"])),
    "exchange.fees.tiers.0.taker_bps": st.one_of(NON_FINITE, st.sampled_from(["5", "1001"])),
    "strategy.params.fast": st.sampled_from(["0", "3", "30", "999999", "1000001", "nan"]),
    "strategy.params.slow": st.sampled_from(["2", "50", "1000000", "1000001"]),
    "risk.params.cooldown_bars": st.sampled_from(["0", "6", "1000000", "1000001", "inf"]),
    "universe.params.top": st.sampled_from(["0", "5", "1000001"]),
    "risk.params.max_position_weight": st.one_of(NON_FINITE, st.sampled_from(["0.05", "1.5"])),
    "backtest.start": DATES,
    "backtest.end": DATES,
    "data.timeframe": st.sampled_from(["1h", "4h", "1d"]),
    "data.sample.start": st.sampled_from(["2024-01-01", "2024-01-01T00:30", "2024-01-01T03:00", "2024-02-30"]),
    "data.sample.n_bars": st.sampled_from(["1", "47", "48", "120", "300"]),
    "risk.params.theme_caps": st.sampled_from(["{}", "{meme: 0.05}", "{meme: nan}"]),
    "++risk.params.theme_caps.DeFi": st.sampled_from(["0.1", "0.9", "nan"]),
    "+strategy.params.extra": st.sampled_from(["1", "nan"]),
}


@st.composite
def configs(draw) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(SETTINGS)), min_size=1, max_size=3, unique=True))
    return ["data.sample.n_symbols=30", "data.sample.n_bars=120", *(f"{k}={draw(SETTINGS[k])}" for k in keys)]


@pytest.mark.slow  # about 0.5 s of CPU per example: a config check, then a run's start, each composed
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_validate_says_ok_exactly_when_the_run_starts(overrides):
    said = validate_verdict(overrides)
    started = start_verdict(overrides)
    if not said:
        assert started is None, f"validate: config OK; the run: {started}"
    else:
        assert started == ("config", said), f"validate: {said}; the run: {started}"


def test_each_class_is_refused_by_both():
    # one example per class, so that a shrunk property run is not the only witness
    for overrides, code in [
        (["backtest.slippage.impact_coef=nan"], "not_finite backtest.slippage.impact_coef"),
        (["strategy.params.slow=1000001"], "max strategy.params.slow"),
        (["risk.params.cooldown_bars=1000001"], "max risk.params.cooldown_bars"),
        (["backtest.start=2030-01-01"], "backtest_window backtest.start"),
        (["backtest.start=2024-01-05T00:30", "backtest.end=2024-01-05T01:00"], "backtest_window backtest.start"),
        (["data.sample.start=2024-01-01T00:30"], "sample_spec data.sample.start"),
        (["data.sample.n_bars=47"], "min data.sample.n_bars"),
        (["risk.params.theme_caps={}"], "empty_mapping_merges risk.params.theme_caps"),
        (["+strategy.params.extra=nan"], "not_finite strategy.params.extra"),
    ]:
        assert validate_verdict(overrides) == [code], overrides
        assert start_verdict(overrides) == ("config", [code]), overrides
