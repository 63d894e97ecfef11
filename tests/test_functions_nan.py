"""Missing values, flat prices, short histories and rounding: the edges rules meet in real data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.rules.functions import FUNCTIONS
from tests.helpers.series import args_for, flat_panel, ohlc_panel, random_panel, series_functions

T, N = 200, 5


def f(name):
    return FUNCTIONS[name].impl


@pytest.mark.parametrize("name", series_functions())
def test_a_never_listed_column_gives_nan_or_false(name):
    spec = FUNCTIONS[name]
    args = args_for(spec, T, N, seed=4)
    for a in args:
        if isinstance(a, np.ndarray):
            a[:, 1] = False if a.dtype == bool else np.nan
    out = spec.impl(*args)
    if spec.returns == "bool":
        assert not out[:, 1].any()
    elif name != "bars_since":
        assert np.isnan(out[:, 1]).all()
    assert np.isfinite(out[:, 0]).any() or out.dtype == bool


@pytest.mark.parametrize("name", [n for n in series_functions()
                                  if any(p.type == "window" for p in FUNCTIONS[n].params)])
def test_window_longer_than_history_is_all_nan(name):
    spec = FUNCTIONS[name]
    out = spec.impl(*args_for(spec, 30, N, seed=4, window=31))
    assert np.isnan(out).all()


def test_flat_prices_are_exact():
    """A stale or pegged price: no rounding dust may turn into signals."""
    x = flat_panel(T, N, 1.0001)
    x[:50, 2] = np.nan  # listed later
    x[:100, 3] = np.linspace(0.9, 1.1, 100)  # moves, then goes stale
    listed = ~np.isnan(x)
    for n in (2, 5, 24):
        sma, wma, sd = f("sma")(x, n), f("wma")(x, n), f("std")(x, n)
        flat = np.zeros_like(listed)
        flat[:, [0, 1, 4]] = True
        flat[50 + n - 1:, 2] = True
        flat[100 + n - 1:, 3] = True
        flat[: n - 1] = False
        assert (sma[flat] == 1.0001).all() and (wma[flat] == 1.0001).all()
        assert (sd[flat] == 0.0).all()
        assert np.isnan(f("zscore")(x, n)[flat]).all()
        assert (f("rolling_sum")(x, n)[flat] == pytest.approx(1.0001 * n, rel=1e-15))
    rsi = f("rsi")(x, 14)
    assert (rsi[60:, [0, 1, 4]] == 50.0).all()
    assert (f("atr")(x, x, x, 14)[20:, 0] == 0.0).all()
    assert (f("pct_change")(x, 3)[120:] == 0.0).all()


def test_std_stays_accurate_at_high_price_levels():
    """Price 1e5 with tiny moves over a long history: naive cumsum variance would lose every digit."""
    rng = np.random.default_rng(0)
    x = 1e5 + np.cumsum(rng.normal(0, 1e-3, (20_000, 3)), axis=0)
    x[:, 2] = np.round(x[:, 2], 1)  # tick-rounded: many windows nearly flat
    for n in (2, 24, 200):
        win = np.lib.stride_tricks.sliding_window_view(x, n, axis=0)
        want = np.full(x.shape, np.nan)
        want[n - 1:] = win.std(axis=-1, ddof=1)  # two-pass, per window
        # numpy's per-window two-pass std leaves ~1e-11 dust on flat windows where ours is 0;
        # a cumsum over raw prices would be off by ~1e-2 here
        np.testing.assert_allclose(f("std")(x, n), want, rtol=1e-6, atol=1e-9, equal_nan=True)


def test_near_equal_pair_has_exact_spread():
    x = np.array([[190.95409489], [192.05233127], [192.05239725]])
    np.testing.assert_allclose(f("std")(x, 2)[2, 0], abs(192.05239725 - 192.05233127) / np.sqrt(2), rtol=1e-9)


@pytest.mark.parametrize("name", ["ema", "rsi", "atr"])
def test_recursive_functions_carry_over_a_gap(name):
    """A missing bar after the listing gives NaN on that bar; later bars equal the result on the
    input with the gap forward-filled (no restart of the warm-up)."""
    h, lo, c = ohlc_panel(T, N, 6)
    holes = np.zeros(c.shape, dtype=bool)
    holes[150, 0] = holes[150:153, 3] = True
    gappy = [np.where(holes, np.nan, a) for a in (h, lo, c)]
    filled = [pd.DataFrame(a).ffill().to_numpy() for a in gappy]
    if name == "atr":
        got, want = f(name)(*gappy, 10), f(name)(*filled, 10)
    else:
        got, want = f(name)(gappy[2], 10), f(name)(filled[2], 10)
    assert np.isnan(got[holes]).all()
    np.testing.assert_array_equal(got[~holes], want[~holes])
    assert np.isfinite(got[153:, 3]).all()


def test_cross_is_false_around_missing_values():
    a = np.array([[1.0], [np.nan], [3.0], [1.0], [3.0]])
    b = np.full_like(a, 2.0)
    assert f("crossover")(a, b)[:, 0].tolist() == [False, False, False, False, True]
    assert f("crossunder")(a, b)[:, 0].tolist() == [False, False, False, True, False]


def test_pct_change_of_a_zero_price_is_nan_not_inf():
    x = np.array([[0.0], [1.0], [2.0]])
    out = f("pct_change")(x, 1)[:, 0]
    assert np.isnan(out[:2]).all() and out[2] == 1.0


def test_ema_warm_up_starts_at_each_listing():
    x = random_panel(T, N, 2)
    first = np.argmax(np.isfinite(x), axis=0)
    out = f("ema")(x, 20)
    for j in range(N):
        assert np.isnan(out[: first[j] + 19, j]).all() and np.isfinite(out[first[j] + 19:, j]).all()


# ---- property: windowed functions equal pandas on arbitrary data with arbitrary gaps ----------
_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.tuples(st.integers(1, 60), st.integers(1, 4)),
             elements=st.one_of(_values, st.just(np.nan))),
    n=st.integers(1, 12),
    name=st.sampled_from(["sma", "rolling_sum", "std", "rolling_max", "rolling_min", "lag"]),
)
def test_windowed_functions_equal_pandas_on_any_data(x, n, name):
    if name == "std" and n == 1:
        n = 2
    df = pd.DataFrame(x)
    want = {
        "sma": lambda: df.rolling(n).mean(), "rolling_sum": lambda: df.rolling(n).sum(),
        "std": lambda: df.rolling(n).std(), "rolling_max": lambda: df.rolling(n).max(),
        "rolling_min": lambda: df.rolling(n).min(), "lag": lambda: df.shift(n),
    }[name]().to_numpy()
    got = f(name)(x, n)
    # pandas' online sums carry their own rounding: compare at the data's scale
    scale = np.nanmax(np.abs(x), initial=1.0) * n
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, equal_nan=True)
    assert (np.isnan(got) == np.isnan(want)).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40))
def test_bounds_hold(seed, n):
    h, lo, c = ohlc_panel(150, 3, seed)
    mn, mean, mx = f("rolling_min")(c, n), f("sma")(c, n), f("rolling_max")(c, n)
    ok = np.isfinite(mean)
    assert (mn[ok] <= mean[ok] * (1 + 1e-12)).all() and (mean[ok] <= mx[ok] * (1 + 1e-12)).all()
    r = f("rsi")(c, n)
    assert ((r[np.isfinite(r)] >= 0) & (r[np.isfinite(r)] <= 100)).all()
    assert (f("atr")(h, lo, c, n)[np.isfinite(f("atr")(h, lo, c, n))] >= 0).all()
    assert (f("std")(c, n)[np.isfinite(f("std")(c, n))] >= 0).all()
