"""exp, log and power with the same bits on every CPU, and normal draws built on them.

numpy picks its exp/log/power/sin loops at import time from the CPU (SSE, AVX2, AVX-512,
NEON, ...); the loops are accurate but not correctly rounded, so two machines disagree in the
last bit now and then, and a backtest that compares fills exactly then differs. The functions
here use only operations IEEE 754 rounds exactly the same everywhere: + - * /, sqrt, rint,
comparisons, and exponent scaling (``np.frexp``/``np.ldexp``); every numpy ufunc applies one
such operation per element, so no compiler can fuse or reorder them.

Algorithms: fdlibm's ``e_exp.c`` and ``e_log.c`` (Sun Microsystems, 1993), vectorised. Both
are accurate to below 1 ulp (``tests/test_detmath.py`` checks <= 1 ulp against ``math`` over
wide ranges, subnormals and the edges). ``power`` is exact-ish repeated multiplication for
integral exponents up to 64 and ``exp(y * log(x))`` otherwise, whose error grows with
``|y * log(x)|`` (about 1 ulp per unit, so a few ulp for everyday sizes).

``standard_normal`` and friends draw from ``Generator.random()`` (53 random bits scaled
exactly) and transform with the functions above (Marsaglia's polar method), because numpy's
own normal, gamma and Student-t samplers call the C library's exp/log, which also differs
between CPUs and platforms.
"""
from __future__ import annotations

import math

import numpy as np

# fdlibm e_exp.c
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42 fee00000: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_EXP_P = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
          -1.65339022054652515390e-06, 4.13813679705723846039e-08)
_EXP_OVER = 7.09782712893383973096e+02  # above: inf
_EXP_UNDER = -7.45133219101941108420e+02  # below: 0
# fdlibm e_log.c
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_SQRT_HALF = 0.70710678118654752440
_MAX_INT_EXPONENT = 64


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _flat(x) -> np.ndarray:
    """A 1-D float64 view or copy (0-d inputs too: numpy turns 0-d results into scalars)."""
    return _arr(x).reshape(-1)


def _out(a: np.ndarray, like):
    """``a`` in the shape of ``like``: a float for a Python or numpy scalar, else an array."""
    shape = np.shape(like)
    if not shape and not isinstance(like, np.ndarray):
        return float(a.reshape(-1)[0])
    return a.reshape(shape)


def exp(x):
    """e**x, below 1 ulp of the true value; inf above 709.78, 0 below -745.13, NaN stays NaN."""
    x0 = x
    x = _flat(x)
    with np.errstate(all="ignore"):
        xc = np.clip(x, _EXP_UNDER - 1.0, _EXP_OVER + 1.0)  # keeps k small; NaN passes through
        k = np.rint(xc * _INV_LN2)
        np.copyto(k, 0.0, where=np.isnan(k))
        hi = xc - k * _LN2_HI
        lo = k * _LN2_LO
        r = hi - lo
        t = r * r
        p1, p2, p3, p4, p5 = _EXP_P
        c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))))
        y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
        out = np.ldexp(y, k.astype(np.int32))
        out = np.where(x > _EXP_OVER, np.inf, out)
        out = np.where(x < _EXP_UNDER, 0.0, out)
    return _out(out, x0)


def log(x):
    """Natural log, below 1 ulp of the true value; -inf at 0, NaN below 0, inf at inf."""
    x0 = x
    x = _flat(x)
    with np.errstate(all="ignore"):
        pos = (x > 0) & (x < np.inf)
        xs = np.where(pos, x, 1.0)
        m, e = np.frexp(xs)  # xs = m * 2**e, 0.5 <= m < 1, exact also for subnormals
        small = m < _SQRT_HALF
        m = np.where(small, m * 2.0, m)  # now in [sqrt(1/2), sqrt(2)): 1 + f
        k = (e - small).astype(np.float64)
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        l1, l2, l3, l4, l5, l6, l7 = _LG
        t1 = w * (l2 + w * (l4 + w * l6))
        t2 = z * (l1 + w * (l3 + w * (l5 + w * l7)))
        r = t2 + t1
        hfsq = 0.5 * f * f
        # fdlibm's two forms: the half-square one where |f| is large, the other near 1
        wide = (f > 0.3799) | (f < -0.2899)
        a = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
        b = k * _LN2_HI - ((s * (f - r) - k * _LN2_LO) - f)
        out = np.where(wide, a, b)
        out = np.where(pos, out, np.where(x == 0, -np.inf, np.where(x == np.inf, np.inf, np.nan)))
    return _out(out, x0)


def _int_power(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """x ** n for integral |n| <= 64 by binary exponentiation (at most 12 roundings)."""
    result = np.ones(np.broadcast_shapes(x.shape, n.shape))
    base = np.broadcast_to(x, result.shape).copy()
    e = np.abs(np.broadcast_to(n, result.shape)).astype(np.int64)
    while True:
        odd = (e & 1).astype(bool)
        result = np.where(odd, result * base, result)
        e = e >> 1
        if not e.any():
            break
        base = base * base
    return np.where(np.broadcast_to(n, result.shape) < 0, 1.0 / result, result)


def power(x, y):
    """x ** y element by element, with C's special cases (x ** 0 == 1, 1 ** y == 1, a negative
    x to a non-integral power is NaN, 0 to a negative power is inf)."""
    like = np.empty(np.broadcast_shapes(np.shape(x), np.shape(y))) if np.ndim(x) or np.ndim(y) else x
    x, y = np.broadcast_arrays(_arr(x), _arr(y))
    x, y = x.reshape(-1), y.reshape(-1)
    with np.errstate(all="ignore"):
        integral = (np.floor(y) == y) & (np.abs(y) <= _MAX_INT_EXPONENT)
        general = exp(y * log(np.abs(x)))
        odd = integral & (np.abs(np.fmod(y, 2.0)) == 1.0)
        general = np.where((x < 0) & odd, -general, general)
        general = np.where((x < 0) & ~(np.floor(y) == y), np.nan, general)
        # a huge integral exponent of a negative base: its parity decides the sign
        big_int = (np.floor(y) == y) & ~integral & (x < 0)
        general = np.where(big_int & (np.fmod(y, 2.0) != 0), -np.abs(general), general)
        general = np.where(big_int & (np.fmod(y, 2.0) == 0), np.abs(general), general)
        out = general
        if integral.any():
            out = np.where(integral, _int_power(x, np.where(integral, y, 0.0)), general)
        out = np.where((y == 0) | (x == 1.0), 1.0, out)
    return _out(out, like)


def exact_decade(x: float) -> int:
    """floor(log10(x)) of a positive finite float, exactly (no rounding of the log)."""
    from fractions import Fraction

    v = Fraction(x)
    k = int(math.floor(math.log10(x)))  # a guess within one of the answer
    while Fraction(10) ** k > v:
        k -= 1
    while Fraction(10) ** (k + 1) <= v:
        k += 1
    return k


def pow10(k: int) -> float:
    """10.0 ** k correctly rounded, for an integer k (Python's int division rounds correctly)."""
    return float(10 ** k) if k >= 0 else 1 / 10 ** -k


# --------------------------------------------------------------------------------------------
# random draws that do not go through the C library's exp/log
# --------------------------------------------------------------------------------------------
def standard_normal(rng: np.random.Generator, size) -> np.ndarray:
    """N(0, 1) draws: Marsaglia's polar method on ``rng.random()`` pairs, in batches."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n)
    filled = 0
    while filled < n:
        need = n - filled
        pairs = (need + 1) // 2
        u = rng.random((pairs + pairs // 3 + 8, 2)) * 2.0 - 1.0  # exact: 53-bit multiples of 2**-53
        s = u[:, 0] * u[:, 0] + u[:, 1] * u[:, 1]
        ok = (s < 1.0) & (s > 0.0)
        u, s = u[ok], s[ok]
        z = (u * np.sqrt(-2.0 * log(s) / s)[:, None]).ravel()
        take = min(need, z.size)
        out[filled:filled + take] = z[:take]
        filled += take
    return out.reshape(shape)


def uniform(rng: np.random.Generator, low: float, high: float, size=None):
    """U[low, high) as low + (high - low) * random(), in numpy's own (unfused) arithmetic."""
    u = rng.random(size)
    return low + (high - low) * u


def exponential(rng: np.random.Generator, scale: float, size=None):
    """Exponential draws with mean ``scale``: -scale * log(1 - U), U in [0, 1)."""
    u = rng.random(size)
    return _out(-scale * _arr(log(1.0 - _flat(u))), u)


def student_t4(rng: np.random.Generator, size) -> np.ndarray:
    """Student-t with 4 degrees of freedom: Z / sqrt(V / 4) with V = -2 log(U1 U2) ~ chi2(4)."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    z = standard_normal(rng, shape)
    u = 1.0 - rng.random(shape + (2,))  # (0, 1]: log stays finite
    v = -2.0 * (log(u[..., 0]) + log(u[..., 1]))
    return z / np.sqrt(v / 4.0)
