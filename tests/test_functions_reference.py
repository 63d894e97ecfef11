"""Every function of the library against an independent pandas / numpy reference."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.rules.functions import FUNCTIONS
from tests.helpers.series import bool_panel, ohlc_panel, random_panel, with_holes

T, N = 400, 7


def call(name, *args):
    return FUNCTIONS[name].impl(*args)


def close_(seed=3):
    return random_panel(T, N, seed)


# ---- pandas references (written independently of the library) ------------------------------
def ref_wma(df: pd.DataFrame, n: int) -> pd.DataFrame:
    w = np.arange(1, n + 1, dtype=float)
    return df.rolling(n).apply(lambda a: float((a * w).sum() / w.sum()), raw=True)


def ref_wilder(values: pd.Series, first_change: int, n: int) -> pd.Series:
    """Wilder's average: seed = mean of the first n values from ``first_change``, then
    ewm(alpha=1/n, adjust=False)."""
    seeded = pd.Series(np.nan, index=values.index)
    seed_at = first_change + n - 1
    if seed_at >= len(values):
        return seeded
    seeded.iloc[seed_at] = values.iloc[first_change: seed_at + 1].mean()
    seeded.iloc[seed_at + 1:] = values.iloc[seed_at + 1:]
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean()


def ref_rsi(df: pd.DataFrame, n: int) -> pd.DataFrame:
    out = {}
    for col in df:
        s = df[col]
        delta = s.diff()
        first = s.first_valid_index()
        if first is None:
            out[col] = pd.Series(np.nan, index=s.index)
            continue
        up = ref_wilder(delta.clip(lower=0), first + 1, n)
        down = ref_wilder((-delta).clip(lower=0), first + 1, n)
        total = up + down
        out[col] = (100 * up / total).where(total > 0, 50.0).where(up.notna())
    return pd.DataFrame(out)


def ref_atr(h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, n: int) -> pd.DataFrame:
    out = {}
    for col in c:
        pc = c[col].shift(1)
        tr = pd.concat([h[col] - lo[col], (h[col] - pc).abs(), (lo[col] - pc).abs()], axis=1).max(axis=1, skipna=False)
        first = c[col].first_valid_index()
        out[col] = ref_wilder(tr, first + 1, n) if first is not None else pd.Series(np.nan, index=c.index)
    return pd.DataFrame(out)


def ref_bars_since(cond: np.ndarray) -> np.ndarray:
    out = np.full(cond.shape, np.nan)
    for j in range(cond.shape[1]):
        last = None
        for t in range(cond.shape[0]):
            if cond[t, j]:
                last = t
            if last is not None:
                out[t, j] = t - last
    return out


def _df(x):
    return pd.DataFrame(x)


SERIES_REFERENCES = {
    "sma": lambda x, n: _df(x).rolling(n).mean(),
    "rolling_sum": lambda x, n: _df(x).rolling(n).sum(),
    "wma": lambda x, n: ref_wma(_df(x), n),
    "std": lambda x, n: _df(x).rolling(n).std(),
    "zscore": lambda x, n: (_df(x) - _df(x).rolling(n).mean()) / _df(x).rolling(n).std(),
    "ema": lambda x, n: _df(x).ewm(span=n, adjust=False, min_periods=n).mean(),
    "rolling_max": lambda x, n: _df(x).rolling(n).max(),
    "rolling_min": lambda x, n: _df(x).rolling(n).min(),
    "lag": lambda x, n: _df(x).shift(n),
    "pct_change": lambda x, n: _df(x) / _df(x).shift(n) - 1,
    "returns": lambda x, n: _df(x).pct_change(periods=n),
    "rsi": lambda x, n: ref_rsi(_df(x), n),
}


@pytest.mark.parametrize("name", sorted(SERIES_REFERENCES))
@pytest.mark.parametrize("n", [1, 2, 14, 50])
def test_single_series_function_matches_pandas(name, n):
    if name in ("std", "zscore") and n == 1:
        pytest.skip("sample std needs n >= 2 (validated elsewhere)")
    x = close_()
    got = call(name, x, n)
    want = np.asarray(SERIES_REFERENCES[name](x, n), dtype=float)
    assert got.shape == x.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)
    # the warm-up really is there: a column listed at row s has NaN before s + n - 1 for windows
    assert np.isnan(got[: max(n - 1, 0)]).all() or name in ("lag", "pct_change", "returns", "rsi")


@pytest.mark.parametrize("n", [3, 14, 30])
def test_atr_matches_pandas_wilder(n):
    h, lo, c = ohlc_panel(T, N, 5)
    got = call("atr", h, lo, c, n)
    want = ref_atr(_df(h), _df(lo), _df(c), n).to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
    first = np.argmax(np.isfinite(c), axis=0)
    for j in range(N):  # first ATR is on bar first + n (true ranges 1..n need a previous close)
        assert np.isnan(got[: first[j] + n, j]).all() and np.isfinite(got[first[j] + n, j])


def test_rsi_default_window_is_14_and_bounded():
    x = close_(9)
    got = call("rsi", x)
    np.testing.assert_array_equal(got, call("rsi", x, 14))
    finite = got[np.isfinite(got)]
    assert finite.size and finite.min() >= 0 and finite.max() <= 100


@pytest.mark.parametrize("name, op", [("crossover", "over"), ("crossunder", "under")])
def test_cross_matches_pandas(name, op):
    a, b = _df(close_(1)), _df(close_(2))
    if op == "over":
        want = (a > b) & (a.shift(1) <= b.shift(1))
    else:
        want = (a < b) & (a.shift(1) >= b.shift(1))
    got = call(name, a.to_numpy(), b.to_numpy())
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, want.to_numpy())
    assert got.any()  # the data does cross: the test is not vacuous


def test_cross_with_constant_level():
    r = call("rsi", close_(4), 14)
    got = call("crossunder", r, 30.0)
    s = _df(r)
    np.testing.assert_array_equal(got, ((s < 30) & (s.shift(1) >= 30)).to_numpy())


def test_bars_since_matches_loop_reference():
    cond = bool_panel(T, N, 8, p=0.05)
    cond[:, 3] = False  # never true -> all NaN
    got = call("bars_since", cond)
    np.testing.assert_array_equal(got, ref_bars_since(cond))
    assert np.isnan(got[:, 3]).all()


def test_windowed_functions_match_pandas_with_holes():
    """Gaps anywhere: a window holding a NaN is NaN, exactly like pandas min_periods=n."""
    x = with_holes(close_(12), seed=5, frac=0.03)
    for name in ("sma", "rolling_sum", "wma", "std", "zscore", "rolling_max", "rolling_min", "lag", "pct_change"):
        want = np.asarray(SERIES_REFERENCES[name](x, 6), dtype=float)
        np.testing.assert_allclose(call(name, x, 6), want, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)


def test_every_function_has_a_reference_here():
    covered = set(SERIES_REFERENCES) | {"atr", "crossover", "crossunder", "bars_since"} | set(ELEMENTWISE_REFERENCES)
    assert covered == set(FUNCTIONS)


# ---- element-wise ---------------------------------------------------------------------------
def _math_or_nan(f):
    def g(v):
        try:
            return f(v)
        except (ValueError, OverflowError):
            return math.nan
    return g


ELEMENTWISE_REFERENCES = {
    "abs": (lambda x: abs(x), 1),
    "log": (_math_or_nan(lambda x: math.log(x) if x > 0 else math.nan), 1),
    "sqrt": (_math_or_nan(lambda x: math.sqrt(x) if x >= 0 else math.nan), 1),
    "exp": (_math_or_nan(lambda x: math.inf if x >= 700 else math.exp(x)), 1),
    "sign": (lambda x: math.nan if math.isnan(x) else float((x > 0) - (x < 0)), 1),
    "round": (lambda x, d: round(x, int(d)) if math.isfinite(x) else x, 2),
    "min": (lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else min(a, b), 2),
    "max": (lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else max(a, b), 2),
    "clip": (lambda x, lo, hi: math.nan if math.isnan(x) else min(max(x, lo), hi), 3),
    "nan_to": (lambda x, v: v if math.isnan(x) else x, 2),
}

VALUES = [-2.5, -1.0, 0.0, 0.5, 1.0, 2.5, 3.14159, 1e-9, 123.456, math.nan, 800.0]


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_REFERENCES))
def test_elementwise_matches_python_math_on_scalars_and_arrays(name):
    ref, arity = ELEMENTWISE_REFERENCES[name]
    extra = {"round": [2], "min": [0.7], "max": [0.7], "clip": [-1.0, 2.0], "nan_to": [50.0]}.get(name, [])
    assert len(extra) == arity - 1
    impl = FUNCTIONS[name].impl
    want = np.array([ref(v, *extra) for v in VALUES])
    for v, w in zip(VALUES, want):  # scalars
        np.testing.assert_allclose(impl(v, *extra), w, rtol=1e-12, equal_nan=True, err_msg=f"{name}({v})")
    vec = np.array(VALUES)  # a per-cycle (N,) vector
    got = impl(vec, *extra)
    assert got.shape == vec.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    panel = np.tile(vec, (3, 1))  # a (T, N) panel
    np.testing.assert_allclose(impl(panel, *extra), np.tile(want, (3, 1)), rtol=1e-12, equal_nan=True)


def test_min_max_take_many_arguments_and_arrays():
    a, b, c = np.array([1.0, 5.0, np.nan]), np.array([2.0, 4.0, 0.0]), np.array([0.5, 9.0, 1.0])
    np.testing.assert_array_equal(FUNCTIONS["min"].impl(a, b, c), [0.5, 4.0, np.nan])
    np.testing.assert_array_equal(FUNCTIONS["max"].impl(a, b, c), [2.0, 9.0, np.nan])
    assert FUNCTIONS["min"].variadic and FUNCTIONS["max"].variadic


def test_clip_and_nan_to_accept_arrays_as_bounds():
    x = np.array([-1.0, 0.5, 3.0, np.nan])
    np.testing.assert_array_equal(FUNCTIONS["clip"].impl(x, np.zeros(4), np.array([1, 1, 2, 2.0])), [0, 0.5, 2, np.nan])
    np.testing.assert_array_equal(FUNCTIONS["nan_to"].impl(x, np.arange(4.0)), [-1.0, 0.5, 3.0, 3.0])
