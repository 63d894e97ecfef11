"""Series functions look back only: changing rows after t never changes output rows <= t."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules.functions import FUNCTIONS
from tests.helpers.series import args_for, perturb_after, series_functions, with_holes

T, N = 300, 6


def _perturbed(args: list, row: int, seed: int) -> list:
    return [perturb_after(a, row, seed + i) if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]


@pytest.mark.parametrize("name", series_functions())
@pytest.mark.parametrize("row", [0, 17, 149, 298])
def test_future_rows_do_not_change_the_past(name, row):
    spec = FUNCTIONS[name]
    args = args_for(spec, T, N, seed=21, window=7)
    before = spec.impl(*args)
    after = spec.impl(*_perturbed(args, row, seed=99))
    np.testing.assert_array_equal(after[: row + 1], before[: row + 1])
    if row < T - 50:  # and the perturbation did reach the output: the test is not vacuous
        assert not np.array_equal(after[row + 1:], before[row + 1:], equal_nan=True)


@pytest.mark.parametrize("name", series_functions())
def test_lookback_holds_with_gaps_in_the_input(name):
    spec = FUNCTIONS[name]
    args = [with_holes(a, seed=3, frac=0.03) if isinstance(a, np.ndarray) and a.dtype != bool else a
            for a in args_for(spec, T, N, seed=5, window=4)]
    before = spec.impl(*args)
    after = spec.impl(*_perturbed(args, 120, seed=7))
    np.testing.assert_array_equal(after[:121], before[:121])


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(series_functions()),
    t=st.integers(min_value=1, max_value=80),
    row=st.integers(min_value=0, max_value=79),
    window=st.integers(min_value=2, max_value=30),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_lookback_property(name, t, row, window, seed):
    """Any length (shorter than the window included), any cut row, any window."""
    row = min(row, t - 1)
    spec = FUNCTIONS[name]
    args = args_for(spec, t, 3, seed=seed, window=window)
    before = spec.impl(*args)
    after = spec.impl(*_perturbed(args, row, seed=seed + 1))
    assert before.shape == (t, 3)
    np.testing.assert_array_equal(after[: row + 1], before[: row + 1])
