"""Overfitting statistics against published worked examples and constructed cases with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from engine.research import normal
from engine.research.overfit import (deflated_sharpe, expected_max_sharpe, moments, pbo_cscv,
                                     probabilistic_sharpe, trial_sharpe_variance)
from engine.research.stability import parameter_stability


@pytest.mark.parametrize("x", [-37.0, -8.5, -3.0, -1.4999, -0.3, 0.0, 0.7, 1.5, 2.326, 6.0, 9.0])
def test_normal_cdf_matches_scipy(x):
    assert normal.cdf(x) == pytest.approx(float(ndtr(x)), rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("p", [1e-300, 1e-12, 0.003, 0.3, 0.5, 0.99, 1 - 1 / (100 * math.e), 1 - 1e-12])
def test_normal_ppf_inverts_cdf(p):
    assert normal.ppf(p) == pytest.approx(float(ndtri(p)), rel=1e-11, abs=1e-13)


def test_normal_ppf_rejects_probabilities_outside_0_1():
    with pytest.raises(ValueError, match="expected 0 < p < 1"):
        normal.ppf(1.0)


def test_deflated_sharpe_matches_the_papers_numerical_example():
    # Bailey & López de Prado (2014), section "A numerical example": N = 100 trials, variance of
    # the annualised Sharpe ratios 1/2, a selected annualised SR of 2.5 over T = 1250 daily returns
    # (5 years) with skewness -3 and kurtosis 10 -> SR0 = 0.1132 (daily) and DSR = 0.9004.
    days = 250
    sr0 = expected_max_sharpe(100, 0.5 / days)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    m = moments([0.0, 1.0])  # only its type matters: the paper gives the moments
    m = type(m)(1250, 2.5 / math.sqrt(days), -3.0, 10.0)
    d = deflated_sharpe(m, 100, 0.5 / days)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)
    assert d.sr0 == sr0


def test_one_trial_is_not_deflated_and_dsr_equals_psr_against_zero():
    m = type(moments([0.0, 1.0]))(500, 0.08, -0.5, 6.0)
    assert deflated_sharpe(m, 1, 0.01).dsr == probabilistic_sharpe(0.08, 0.0, 500, -0.5, 6.0)


def test_more_trials_deflate_more():
    m = type(moments([0.0, 1.0]))(1000, 0.1, 0.0, 3.0)
    dsrs = [deflated_sharpe(m, n, 0.001).dsr for n in (2, 10, 100, 1000)]
    assert dsrs == sorted(dsrs, reverse=True) and dsrs[0] > dsrs[-1] + 0.1


def test_psr_of_normal_returns_is_the_textbook_z_test():
    # skew 0, kurtosis 3: the denominator is sqrt(1 + SR^2 / 2)
    sr, t = 0.05, 2000
    z = sr * math.sqrt(t - 1) / math.sqrt(1 + sr * sr / 2)
    assert probabilistic_sharpe(sr, 0.0, t, 0.0, 3.0) == pytest.approx(float(ndtr(z)), rel=1e-13)


def test_moments_of_a_known_sample():
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.015, -0.005])
    m = moments(r)
    d = r - r.mean()
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-14)
    assert m.skew == pytest.approx(np.mean(d ** 3) / np.mean(d ** 2) ** 1.5, rel=1e-12)
    assert m.kurtosis == pytest.approx(np.mean(d ** 4) / np.mean(d ** 2) ** 2, rel=1e-12)
    assert moments(np.zeros(10)).sharpe is None


def test_trial_sharpe_variance_skips_undefined():
    assert trial_sharpe_variance([0.1, None, 0.3]) == pytest.approx(0.02)
    assert trial_sharpe_variance([0.1]) == 0.0


def _blocks(pattern: np.ndarray, rows: int, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """(S*rows, N) returns whose block means follow ``pattern`` (S, N), with a little noise."""
    rng = np.random.default_rng(seed)
    noise = rng.choice([-1.0, 1.0], size=(pattern.shape[0], rows, pattern.shape[1])) * noise
    return (pattern[:, None, :] + noise).reshape(-1, pattern.shape[1])


def test_pbo_is_one_when_the_in_sample_best_is_always_the_out_of_sample_worst():
    # two trials and two blocks: A wins block 0 and loses block 1, B the opposite. Each split
    # picks the in-sample winner, which is the out-of-sample loser: every logit is negative.
    r = _blocks(np.array([[0.01, -0.01], [-0.01, 0.01]]), rows=50)
    res = pbo_cscv(r, n_blocks=2)
    assert res.n_splits == 2 and res.pbo == 1.0
    assert res.logits == pytest.approx([math.log((1 / 3) / (2 / 3))] * 2)
    assert res.prob_oos_loss == 1.0


def test_pbo_is_zero_when_one_trial_dominates_every_block():
    pattern = np.tile(np.array([[0.002, 0.0005, 0.001, -0.001]]), (8, 1))
    res = pbo_cscv(_blocks(pattern, rows=40, seed=3, noise=0.001), n_blocks=8)
    assert res.n_splits == math.comb(8, 4) == len(res.logits)
    assert res.pbo == 0.0
    # the best trial ranks N of N out of sample: w = N / (N + 1)
    assert res.logits == pytest.approx([math.log(4 / 1)] * res.n_splits)


def test_pbo_of_pure_noise_is_near_one_half_and_symmetric():
    # the paper's property: with no skill anywhere the in-sample winner is a random draw out of
    # sample, so lambda is symmetric about 0 and PBO is about 1/2
    # (one draw of noise can land anywhere: the mean over draws is what is about 1/2)
    runs = [pbo_cscv(np.random.default_rng(seed).standard_normal((400, 20)), n_blocks=8) for seed in range(24)]
    assert runs[0].n_splits == 70
    assert 0.4 < float(np.mean([r.pbo for r in runs])) < 0.65
    lam = np.concatenate([r.logits for r in runs])
    assert abs(float(np.median(lam))) < 0.5


def test_pbo_drops_leading_rows_to_make_equal_blocks():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((163, 5))
    res = pbo_cscv(a, n_blocks=4)
    assert res.dropped_rows == 3
    assert res.logits == pbo_cscv(a[3:], n_blocks=4).logits


@pytest.mark.parametrize("blocks", [3, 0])
def test_pbo_rejects_odd_block_counts(blocks):
    with pytest.raises(ValueError, match="expected an even number"):
        pbo_cscv(np.zeros((100, 3)), n_blocks=blocks)


def test_parameter_stability():
    grid = {"fast": [6, 12, 24, 48], "slow": [120, 240]}
    chosen = [{"fast": 12, "slow": 240}, {"fast": 12, "slow": 240}, {"fast": 48, "slow": 240}, {"fast": 6, "slow": 240}]
    s = parameter_stability(chosen, grid)
    assert s["slow"] == {"values": [240] * 4, "modal": 240, "modal_share": 1.0, "changes": 0.0, "dispersion": 0.0}
    f = s["fast"]
    assert f["modal"] == 12 and f["modal_share"] == 0.5 and f["changes"] == pytest.approx(2 / 3)
    pos = np.array([1, 1, 3, 0])
    assert f["dispersion"] == pytest.approx(pos.std() / 3)
