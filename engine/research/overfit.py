"""Overfitting statistics of a search: the deflated Sharpe ratio and the probability of
backtest overfitting (formulas and conventions in docs/metrics.md, "Overfitting statistics").

- Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5).
- Bailey, D. H., Borwein, J., López de Prado, M. and Zhu, Q. J. (2015), "The Probability of
  Backtest Overfitting", Journal of Computational Finance 20(4).

Sharpe ratios here are per observation (per bar), never annualised: the formulas need the
Sharpe ratio at the frequency of the returns and the number of returns.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engine import detmath
from engine.research import normal

EULER_GAMMA = 0.5772156649015328606065120900824024310422


@dataclass(frozen=True)
class ReturnMoments:
    """What the Sharpe statistics need from a return series."""
    n: int  # number of returns (T)
    sharpe: float | None  # mean / sample std (ddof=1), per observation
    skew: float | None  # third standardised moment (population)
    kurtosis: float | None  # fourth standardised moment (population; 3 for a normal)


def moments(returns: Sequence[float] | np.ndarray) -> ReturnMoments:
    r = np.asarray(returns, dtype=np.float64)
    n = int(r.size)
    if n < 2:
        return ReturnMoments(n, None, None, None)
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    sd = float(r.std(ddof=1))
    if not (m2 > 1e-30 and sd > 0.0):
        return ReturnMoments(n, None, None, None)
    skew = float(np.mean(d * d * d)) / (m2 * math.sqrt(m2))
    kurt = float(np.mean((d * d) * (d * d))) / (m2 * m2)
    return ReturnMoments(n, float(r.mean()) / sd, skew, kurt)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe ratio of ``n_trials`` independent trials whose true
    Sharpe ratio is zero and whose estimates have variance ``sharpe_variance`` (DSR paper, eq. 6)."""
    if n_trials < 1:
        raise ValueError(f"expected_max_sharpe: n_trials is {n_trials}; expected at least 1")
    if n_trials == 1 or sharpe_variance <= 0.0:
        return 0.0  # one trial: nothing was selected, no deflation
    z1 = normal.ppf(1.0 - 1.0 / n_trials)
    z2 = normal.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float | None:
    """PSR(SR*): the probability that the true Sharpe ratio exceeds ``benchmark`` given an
    estimate ``sharpe`` from ``n_obs`` returns with that skew and kurtosis (DSR paper, eq. 2)."""
    if n_obs < 2:
        return None
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not var > 0.0:
        return None  # the moments are inconsistent with this Sharpe ratio: no answer, not a guess
    return normal.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float | None  # probability that the selected strategy's true Sharpe ratio is above SR0
    sr0: float  # expected maximum Sharpe ratio of the trials under the null (per observation)
    sharpe: float | None  # the selected strategy's Sharpe ratio (per observation)
    n_trials: int
    sharpe_variance: float
    n_obs: int
    skew: float | None
    kurtosis: float | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


def deflated_sharpe(m: ReturnMoments, n_trials: int, sharpe_variance: float) -> DeflatedSharpe:
    """DSR = PSR(SR0) with SR0 = expected_max_sharpe(n_trials, sharpe_variance)."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    dsr = None
    if m.sharpe is not None and m.skew is not None and m.kurtosis is not None:
        dsr = probabilistic_sharpe(m.sharpe, sr0, m.n, m.skew, m.kurtosis)
    return DeflatedSharpe(dsr, sr0, m.sharpe, int(n_trials), float(sharpe_variance), m.n, m.skew, m.kurtosis)


def trial_sharpe_variance(sharpes: Sequence[float | None]) -> float:
    """Sample variance (ddof=1) of the trials' per-observation Sharpe ratios (undefined ones left out)."""
    s = np.array([x for x in sharpes if x is not None and math.isfinite(x)], dtype=np.float64)
    return float(s.var(ddof=1)) if s.size > 1 else 0.0


# --- probability of backtest overfitting ------------------------------------------------------

@dataclass(frozen=True)
class PBOResult:
    pbo: float | None  # share of the splits whose in-sample best ranks at or below the out-of-sample median
    n_blocks: int  # S
    n_splits: int  # C(S, S/2)
    n_trials: int  # N
    logits: list[float] = field(repr=False)  # lambda_c per split, in the order of itertools.combinations
    prob_oos_loss: float | None = None  # share of splits whose in-sample best has an out-of-sample Sharpe < 0
    dropped_rows: int = 0  # leading rows left out so the S blocks are of equal length

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _block_sharpe(s1: np.ndarray, s2: np.ndarray, cnt: float) -> np.ndarray:
    """Sharpe (mean / sample std) per trial from sums and sums of squares over ``cnt`` rows."""
    mean = s1 / cnt
    var = (s2 - s1 * mean) / (cnt - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = mean / np.sqrt(var)
    # a flat trial has no Sharpe ratio: rank it below every defined one
    return np.where(var > 1e-30, sr, -np.inf)


def pbo_cscv(returns: np.ndarray, n_blocks: int = 16) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    ``returns`` is (T, N): T returns (rows, in time order) of each of N trials (columns). The
    rows are cut into ``n_blocks`` (S, even) equal blocks; every choice of S/2 blocks is an
    in-sample set and the other S/2 its out-of-sample set. Per split the trial with the best
    in-sample Sharpe ratio is taken and its out-of-sample rank among all N trials r (1 = worst)
    gives w = r / (N + 1) and lambda = log(w / (1 - w)); PBO is the share of splits with
    lambda <= 0. Ties go to the lower column (in sample) and to the trial (out of sample: the
    rank counts the trials strictly below it, plus one).
    """
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"pbo_cscv: returns has shape {m.shape}; expected (T, N)")
    t_count, n_trials = m.shape
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"pbo_cscv: n_blocks is {n_blocks}; expected an even number >= 2")
    block = t_count // n_blocks
    if n_trials < 2 or block < 2:
        raise ValueError(f"pbo_cscv: {t_count} rows x {n_trials} trials; expected at least 2 trials and "
                         f"2 rows per block ({2 * n_blocks} rows for {n_blocks} blocks)")
    dropped = t_count - block * n_blocks
    b = m[dropped:].reshape(n_blocks, block, n_trials)
    s1, s2 = b.sum(axis=1), (b * b).sum(axis=1)  # (S, N) per block
    half = n_blocks // 2
    splits = list(itertools.combinations(range(n_blocks), half))
    logits: list[float] = []
    losses = 0
    cnt = float(half * block)
    for chosen in splits:
        is_mask = np.zeros(n_blocks, dtype=bool)
        is_mask[list(chosen)] = True
        # sums over the chosen blocks in a fixed order (never a BLAS product: its order follows the CPU)
        is_sr = _block_sharpe(s1[is_mask].sum(axis=0), s2[is_mask].sum(axis=0), cnt)
        oos_sr = _block_sharpe(s1[~is_mask].sum(axis=0), s2[~is_mask].sum(axis=0), cnt)
        best = int(np.argmax(is_sr))
        rank = 1 + int(np.sum(oos_sr < oos_sr[best]))
        w = rank / (n_trials + 1.0)
        logits.append(float(detmath.log(w / (1.0 - w))))
        losses += bool(oos_sr[best] < 0.0)
    lam = np.asarray(logits)
    return PBOResult(float(np.mean(lam <= 0.0)), n_blocks, len(splits), n_trials, logits,
                     losses / len(splits), dropped)
