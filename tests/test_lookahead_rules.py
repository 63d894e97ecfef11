"""Lookahead proof: changing every bar after t changes no series-level verdict up to t.

Runs over every shipped strategy file (with the shipped regime, universe, risk and execution
files): regime masks and labels, universe filter masks, eligibility, cached membership and its
rebuilds, entry/exit/veto/guard masks, and every feature the rules computed.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.cycle.prepare import Prepared, prepare
from engine.market.data import MarketData
from engine.market.sample import SampleSpec, generate_sample_market
from tests.helpers.rules import SHIPPED_STRATEGIES, load_shipped


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_sample_market(SampleSpec(n_symbols=30, n_bars=1500))


def perturb_after(m: MarketData, t: int, seed: int) -> MarketData:
    """Every bar after t rescaled at random (prices, volumes, spreads) and some bars removed."""
    rng = np.random.default_rng(seed)
    shape = m.close[t + 1:].shape
    scale = np.exp(rng.normal(0.0, 0.3, shape))
    out = {}
    for name in ("open", "high", "low", "close"):
        a = getattr(m, name).copy()
        a[t + 1:] *= scale
        out[name] = a
    out["high"][t + 1:] = np.maximum.reduce([out["high"][t + 1:], out["open"][t + 1:], out["close"][t + 1:]])
    out["low"][t + 1:] = np.minimum.reduce([out["low"][t + 1:], out["open"][t + 1:], out["close"][t + 1:]])
    volume = m.volume.copy()
    volume[t + 1:] *= np.exp(rng.normal(0.0, 1.0, shape))
    spread = m.spread_bps.copy()
    spread[t + 1:] *= np.exp(rng.normal(0.0, 1.0, shape))
    gaps = rng.random(shape) < 0.05  # halts and gaps after t
    for a in (*out.values(), volume, spread):
        a[t + 1:][gaps] = np.nan
    return dataclasses.replace(m, volume=volume, spread_bps=spread, _hash=None, **out)


def series_verdicts(p: Prepared) -> dict[str, np.ndarray]:
    out = {"regime_idx": p.regime_idx, "eligible": p.eligible, "universe": p.universe, "rebuilds": p.rebuilds}
    out.update({f"regime:{k}": v for k, v in p.regime_masks.items()})
    out.update({f"universe:{k}": v for k, v in p.filter_masks.items()})
    for kind, group in (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes), ("guard", p.guards)):
        out[f"{kind}:combined"] = group.combined
        out.update({f"{kind}:{s.rule.id}": s.mask for s in group.series})
    out.update({f"feature:{k}": np.asarray(v) for k, v in p.store.arrays.items()})
    return out


@pytest.mark.parametrize("strategy", SHIPPED_STRATEGIES)
@pytest.mark.parametrize("t", [400, 1100])
def test_no_decision_up_to_t_depends_on_bars_after_t(market, strategy, t):
    rules = load_shipped(strategy=strategy)
    base = series_verdicts(prepare(market, rules))
    moved = series_verdicts(prepare(perturb_after(market, t, seed=t), rules))
    assert base.keys() == moved.keys()
    changed_after = False
    for key, a in base.items():
        b = moved[key]
        np.testing.assert_array_equal(a[: t + 1], b[: t + 1], err_msg=f"{strategy}: {key} changed at or before bar {t}")
        changed_after |= not np.array_equal(a[t + 1:], b[t + 1:])
    assert changed_after, "the perturbation changed nothing: the test would prove nothing"


def test_every_shipped_strategy_is_covered():
    assert "strategies/sma_cross.yaml" in SHIPPED_STRATEGIES and "strategies/momentum.yaml" in SHIPPED_STRATEGIES


def test_the_check_catches_a_function_that_peeks_ahead(market, monkeypatch):
    """Swap sma for a version that reads the next bar: the comparison above must notice."""
    from engine.rules import expr

    honest = expr.FUNCTIONS["sma"]

    def peeking(x, n):
        out = honest.impl(x, n)
        return np.concatenate([out[1:], out[-1:]])

    monkeypatch.setitem(expr.FUNCTIONS, "sma", dataclasses.replace(honest, impl=peeking))
    rules = load_shipped()
    t = 1100
    base = series_verdicts(prepare(market, rules))
    moved = series_verdicts(prepare(perturb_after(market, t, seed=1), rules))
    leaked = [k for k in base if not np.array_equal(base[k][: t + 1], moved[k][: t + 1])]
    assert leaked
