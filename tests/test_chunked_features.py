"""Every series function of the rule library, fed in row chunks through its stream
(FunctionSpec.stream), gives the whole-array result bit for bit (docs/backtest.md, "Chunked
features"). Elementwise functions are stateless: a chunk is the whole result's rows."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from engine.rules.functions import FUNCTIONS

T, N = 157, 5
# chunk borders: shorter than the window, on a block boundary of n=10 (row 60), a 1-row chunk
LAYOUTS = ((157,), (3, 7, 50, 1, 96), (60, 40, 57), (1,) * 20 + (137,), (9, 1, 10, 11, 126))


def _panel(rng: np.random.Generator) -> np.ndarray:
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    x[:13, 1] = np.nan  # leading NaNs (a late listing)
    x[:T, 4] = np.nan  # never listed
    holes = rng.random((T, N)) < 0.03
    holes[:, 0] = False  # one clean column
    x[holes] = np.nan
    x[40:45, 2] = np.inf
    return x


def _args(spec, rng):
    out = []
    for i, p in enumerate(spec.params):
        if p.type == "window":
            out.append(10 if p.default is None else int(p.default))
        elif p.type == "number":
            out.append(2.0 if p.default is None else p.default)
        elif p.type == "bool_series":
            out.append(rng.random((T, N)) < 0.1)
        else:
            out.append(_panel(rng) + i)
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True) \
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _chunks(layout):
    a = 0
    for size in layout:
        yield a, a + size
        a += size
    assert a == T


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_chunked_function_equals_whole(name):
    spec = FUNCTIONS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # hash() is salted per process
    args = _args(spec, rng)
    if spec.kind == "elementwise":
        whole = spec.impl(*args)
        parts = [spec.impl(*[x[a:b] if isinstance(x, np.ndarray) else x for x in args]) for a, b in _chunks(LAYOUTS[1])]
        assert _same(np.concatenate(parts), whole)
        return
    assert spec.stream is not None, f"series function {name} has no streaming support (FunctionSpec.stream)"
    for layout in LAYOUTS:
        for window in ((10, 2, 3) if any(p.type == "window" for p in spec.params) else (None,)):
            call = [window if p.type == "window" and window is not None else x for p, x in zip(spec.params, args)]
            whole = spec.impl(*call)
            stream = spec.stream()
            parts = [stream.step(*[x[a:b] if isinstance(x, np.ndarray) else x for x in call]) for a, b in _chunks(layout)]
            got = np.concatenate(parts)
            assert _same(got, whole), f"{name} window={window} layout={layout}: rows {np.flatnonzero(~np.all((got == whole) | (np.isnan(got) & np.isnan(whole)), axis=1))[:5]}"


@pytest.mark.parametrize("name", ["sma", "ema", "rsi", "atr", "bars_since", "crossover"])
def test_chunked_one_dimensional_series(name):
    """A (T,) series (the regime index) streams as (T,) rows too."""
    spec = FUNCTIONS[name]
    rng = np.random.default_rng(3)
    args = [x[:, 0] if isinstance(x, np.ndarray) else x for x in _args(spec, rng)]
    stream = spec.stream()
    got = np.concatenate([stream.step(*[x[a:b] if isinstance(x, np.ndarray) else x for x in args])
                          for a, b in _chunks(LAYOUTS[1])])
    assert _same(got, spec.impl(*args))


@pytest.mark.parametrize("name", ["rsi", "atr"])
@pytest.mark.parametrize("n", [14, 40])
def test_wilder_seed_of_a_column_seeding_alone_in_its_chunk(name, n):
    """Listings at rows 0, 30 and 70: each column's Wilder seed falls in a chunk where no other
    column seeds, while the whole run seeds all three at once. numpy sums one column pairwise but
    several row by row, so the seed must be summed by the same operations either way."""
    rng = np.random.default_rng(1)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.3, (T, 3)), axis=0))
    x[:30, 1] = np.nan
    x[:70, 2] = np.nan
    args = (x, n) if name == "rsi" else (x * 1.01, x * 0.99, x, n)
    spec = FUNCTIONS[name]
    whole = spec.impl(*args)
    for layout in ((25, 30, 102), (1,) * 60 + (97,), (100, 57)):
        stream = spec.stream()
        got = np.concatenate([stream.step(*[a[r0:r1] if isinstance(a, np.ndarray) else a for a in args])
                              for r0, r1 in _chunks(layout)])
        assert _same(got, whole), f"{name} n={n} layout={layout}"


@pytest.mark.parametrize("name", ["rsi", "atr"])
def test_wilder_whole_run_cut_in_column_slabs_leaves_no_lone_column(name, monkeypatch):
    """A wide panel is computed in slabs of columns (memory); a one-column last slab would sum
    its seed pairwise, unlike the chunked run of the whole width. 17 columns in slabs of 8."""
    from engine.rules import functions

    monkeypatch.setattr(functions, "_SLAB_BYTES", 8 * T * 8)
    rng = np.random.default_rng(2)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.3, (T, 17)), axis=0))
    args = (x, 40) if name == "rsi" else (x * 1.01, x * 0.99, x, 40)
    spec = FUNCTIONS[name]
    stream = spec.stream()
    got = np.concatenate([stream.step(*[a[r0:r1] if isinstance(a, np.ndarray) else a for a in args])
                          for r0, r1 in _chunks(LAYOUTS[1])])
    assert _same(got, spec.impl(*args))
