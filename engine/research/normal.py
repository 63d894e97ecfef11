"""The standard normal CDF and its inverse, built on ``engine.detmath`` so that statistics
written to result files have the same bits on every CPU (scipy's ``ndtr`` and the C library's
``erf`` call the platform's ``exp``, whose last bit follows the CPU).

``erfc`` is CPython's former pure implementation (Modules/mathmodule.c before 3.13): a power
series for |x| < 1.5 and a continued fraction beyond, accurate to a few ulp. The inverse is a
safeguarded Newton iteration on ``cdf`` (bisection whenever a step leaves the bracket).
"""
from __future__ import annotations

import math

from engine import detmath

_SQRT_PI = 1.772453850905516027298167483341145182798
_SERIES_CUTOFF = 1.5
_SERIES_TERMS = 25
_CONTFRAC_CUTOFF = 30.0
_CONTFRAC_TERMS = 50


def _exp(x: float) -> float:
    return float(detmath.exp(float(x)))


def _erf_series(x: float) -> float:
    x2 = x * x
    acc = 0.0
    fk = _SERIES_TERMS + 0.5
    for _ in range(_SERIES_TERMS):
        acc = 2.0 + x2 * acc / fk
        fk -= 1.0
    return acc * x * _exp(-x2) / _SQRT_PI


def _erfc_contfrac(x: float) -> float:
    if x >= _CONTFRAC_CUTOFF:
        return 0.0
    x2 = x * x
    a, da = 0.0, 0.5
    p, p_last = 1.0, 0.0
    q, q_last = da + x2, 1.0
    for _ in range(_CONTFRAC_TERMS):
        a += da
        da += 2.0
        b = da + x2
        p, p_last = b * p - a * p_last, p
        q, q_last = b * q - a * q_last, q
    return p / q * x * _exp(-x2) / _SQRT_PI


def erfc(x: float) -> float:
    x = float(x)
    if math.isnan(x):
        return x
    if abs(x) < _SERIES_CUTOFF:
        return 1.0 - _erf_series(x)
    cf = _erfc_contfrac(abs(x))
    return cf if x > 0 else 2.0 - cf


def cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z."""
    return 0.5 * erfc(-float(x) / math.sqrt(2.0))


def pdf(x: float) -> float:
    return _exp(-0.5 * float(x) * float(x)) / math.sqrt(2.0 * math.pi)


def ppf(p: float) -> float:
    """The x with cdf(x) = p, for 0 < p < 1 (the inverse CDF, probit)."""
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal ppf: p is {p!r}; expected 0 < p < 1")
    # the upper half by symmetry: 1 - p is exact for p >= 0.5 (Sterbenz)
    return -_lower_ppf(1.0 - p) if p > 0.5 else _lower_ppf(p)


def _lower_ppf(p: float) -> float:
    """ppf for 0 < p <= 0.5: Newton on log(cdf(x)) = log(p), which converges fast in the far
    tail too (cdf itself is nearly flat there); bisection whenever a step leaves the bracket."""
    target = _log(p)
    lo, hi, x = -40.0, 0.0, -1.0
    for _ in range(200):
        c = cdf(x)
        g = _log(c) - target if c > 0.0 else -math.inf
        if g == 0.0:
            return x
        if g < 0.0:
            lo = x
        else:
            hi = x
        nx = x - g * c / pdf(x) if c > 0.0 else 0.5 * (lo + hi)
        if not lo < nx < hi:
            nx = 0.5 * (lo + hi)
        if abs(nx - x) <= 4e-16 * max(1.0, abs(x)):
            return nx
        x = nx
    return x


def _log(x: float) -> float:
    return float(detmath.log(float(x)))
