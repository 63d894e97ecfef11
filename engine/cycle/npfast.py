"""Small-array numpy helpers for the per-cycle path.

A cycle works on (N,) vectors of a few hundred symbols, where numpy's Python-level wrappers
(``ndarray.any``, ``np.flatnonzero``, ``np.nan_to_num``, ``np.broadcast_to``) cost more than
the work itself. These give the same values through cheaper C entry points.
"""
from __future__ import annotations

import numpy as np

_count = np.count_nonzero
_isfinite = np.isfinite
_isnan = np.isnan
_copyto = np.copyto


def any_(x: np.ndarray) -> bool:
    """``bool(x.any())`` (NaN counts as true, as in ``any``)."""
    return _count(x) > 0


def nonzero(x: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(x)`` for a 1-D array."""
    return x.nonzero()[0]


def nan_to_num(x: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(x)`` for a float array; ``x`` itself when it is all finite (callers
    never write into the result)."""
    finite = _isfinite(x)
    n_finite = _count(finite)
    if n_finite == x.size:
        return x
    nan = _isnan(x)
    if n_finite + _count(nan) == x.size:  # NaN only (no inf): zero them, as nan_to_num does
        out = x.copy()
        _copyto(out, 0.0, where=nan)
        return out
    return np.nan_to_num(x)


def row(v, n: int) -> np.ndarray:
    """A verdict as an (N,) vector: a 0-d (constant) one repeated, an (N,) one as it is."""
    v = np.asarray(v)
    return v if v.ndim else np.full(n, v)
