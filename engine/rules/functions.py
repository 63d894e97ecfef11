"""The function library of the rule expression language.

Two kinds of function live here, both registered in ``FUNCTIONS`` for the expression compiler:

* ``series`` functions (``sma``, ``ema``, ``rsi``, ``atr``, ...) are computed ONCE over the whole
  history. Their time axis is axis 0: arrays are (T, N) panels (a 1-D array is one (T,) series,
  a 0-d value is a constant). Row t of the output depends only on rows <= t of the inputs, so a
  backtest that reads row t each cycle cannot see the future.
* ``elementwise`` functions (``abs``, ``min``, ``log``, ...) apply to anything numpy broadcasts:
  per-cycle (N,) vectors, (T, N) panels and scalars.

NaN rules (one set for every function):

* A value that is not finite (NaN, +-inf) is *missing*.
* Windowed functions (``sma``, ``std``, ``rolling_max``, ...) give NaN for a window that holds a
  missing row, like pandas ``rolling(n, min_periods=n)``; the first n-1 rows are warm-up (NaN).
* Recursive functions (``ema``, ``rsi``, ``atr``) start each column at its first valid row (a
  listing). A missing row after that start gives NaN at that row and is carried over as the last
  valid value, so one bad bar does not restart a 200-bar warm-up. The compiler forward-fills
  prices, so in practice missing values only form a per-column prefix.
* Boolean results (``crossover``) are False wherever an input is missing.

Nothing here mutates its inputs: the compiler shares one ``close`` array between many rules.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from engine import detmath

ArgType = Literal["series", "window", "number", "bool_series"]


@dataclass(frozen=True)
class Param:
    name: str
    type: ArgType  # "window": a compile-time positive int (bars); "number": compile-time float
    default: float | int | None = None  # None = required


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    kind: Literal["series", "elementwise"]
    params: tuple[Param, ...]
    returns: Literal["number", "bool"]
    impl: Callable
    doc: str  # one line for the generated ops reference
    example: str  # e.g. "sma(close, 50)"
    variadic: bool = False  # min/max accept 2+ args of the first param's type
    # series functions: a factory of the state one call carries over consecutive row chunks
    # (a chunked backtest feeds it consecutive row blocks); its ``step`` gives exactly the rows the whole-array impl gives
    stream: Callable[[], "SeriesStream"] | None = None


class FunctionArgError(ValueError):
    """A function of the rule language was called with an argument it cannot use.

    The message names the function, the argument, what was given and what is expected.
    """

    def __init__(self, function: str, message: str, *, expected: str | None = None) -> None:
        self.function = function
        self.expected = expected
        text = f"{function}(): {message}"
        if expected:
            text += f"; expected {expected}"
        super().__init__(text)


FUNCTIONS: dict[str, FunctionSpec] = {}

# Below this many columns scipy's lfilter beats a row-by-row recurrence; above it the row loop
# wins (lfilter walks each column with a stride of N and is ~6x slower at N=2000:
# python benchmarks/claims.py). Both compute
# y[t] = decay * y[t-1] + u[t] with the same arithmetic, so the results are bit-identical.
_ROW_LOOP_MIN_COLUMNS = 32
# Series kernels run on slabs of columns of at most this many bytes per (T, slab) array: this
# bounds the peak memory of the temporaries on big panels. Measured at 2,000 x 8,784: slabs of
# 2 MB or less are slower (the row loops in _recurrence and _window_scan_inplace pay their
# per-step overhead once per slab), and 64 MB is as fast as the whole width.
_SLAB_BYTES = 128 << 20
_MIN_SLAB_COLUMNS = 8


# --------------------------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------------------------
def _check_window(fname: str, pname: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise FunctionArgError(
            fname, f"window '{pname}' is {value!r} ({type(value).__name__})",
            expected=f"a whole number of bars >= {minimum}",
        )
    n = int(value)
    if n < minimum:
        raise FunctionArgError(fname, f"window '{pname}' is {n}", expected=f"a whole number of bars >= {minimum}")
    return n


def _check_number(fname: str, pname: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise FunctionArgError(fname, f"argument '{pname}' is {value!r} ({type(value).__name__})", expected="a number")
    v = float(value)
    if not np.isfinite(v):
        raise FunctionArgError(fname, f"argument '{pname}' is {v!r}", expected="a finite number")
    return v


def _as_panel(fname: str, pname: str, value: object, boolean: bool) -> np.ndarray:
    """Turn one series argument into a 2-D (time x column) array; 1-D means one (T,) series."""
    a = np.asarray(value)
    if boolean:
        if a.dtype != np.bool_:
            if a.dtype.kind not in "biuf":
                raise FunctionArgError(fname, f"argument '{pname}' has dtype {a.dtype}", expected="a boolean series")
            a = (a != 0) & ~np.isnan(a.astype(np.float64, copy=False))
    else:
        if a.dtype.kind not in "biuf":
            raise FunctionArgError(fname, f"argument '{pname}' has dtype {a.dtype}", expected="a numeric series")
        a = a.astype(np.float64, copy=False)
    if a.ndim > 2:
        raise FunctionArgError(fname, f"argument '{pname}' has shape {a.shape}", expected="a (T,) or (T, N) array")
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a[:, None]
    return a


def _by_columns(kernel: Callable, call: list) -> np.ndarray:
    """Run ``kernel`` on slabs of columns (every series function treats columns independently)."""
    shape = next(a.shape for a in call if isinstance(a, np.ndarray))
    t, n = shape
    width = max(_MIN_SLAB_COLUMNS, _SLAB_BYTES // (8 * max(t, 1)))
    while n % width == 1 and width < n:
        width += 1  # no one-column slab of a wider panel: Wilder's seed sums a lone column differently (_seed_sum)
    if width >= n:
        return np.ascontiguousarray(kernel(*call))
    out = None
    for j in range(0, n, width):
        part = kernel(*[a[:, j:j + width] if isinstance(a, np.ndarray) else a for a in call])
        if out is None:
            out = np.empty(shape, dtype=part.dtype)
        out[:, j:j + width] = part
    return out


def _series_impl(name: str, params: tuple[Param, ...], kernel: Callable, min_windows: dict[str, int]) -> Callable:
    """Wrap a kernel that takes 2-D arrays and validated scalars into the registry's impl."""
    names = [p.name for p in params]

    def impl(*args, **kwargs):
        if len(args) > len(params):
            raise FunctionArgError(name, f"takes at most {len(params)} arguments, {len(args)} given",
                                   expected=signature(FUNCTIONS[name]))
        values: dict[str, object] = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise FunctionArgError(name, f"has no argument '{k}'", expected=signature(FUNCTIONS[name]))
            if k in values:
                raise FunctionArgError(name, f"got argument '{k}' twice")
            values[k] = v
        call: list[object] = []
        panels: list[np.ndarray] = []
        all_1d = True
        any_series = False
        for p in params:
            if p.name not in values:
                if p.default is None:
                    raise FunctionArgError(name, f"is missing argument '{p.name}'", expected=signature(FUNCTIONS[name]))
                values[p.name] = p.default
            v = values[p.name]
            if p.type == "window":
                call.append(_check_window(name, p.name, v, min_windows.get(p.name, 1)))
            elif p.type == "number":
                call.append(_check_number(name, p.name, v))
            else:
                ndim = np.ndim(v)
                any_series |= ndim > 0
                all_1d &= ndim <= 1
                a = _as_panel(name, p.name, v, boolean=p.type == "bool_series")
                panels.append(a)
                call.append(a)
        if not any_series:
            raise FunctionArgError(name, "got only constants", expected="at least one time series argument (e.g. close)")
        if len(panels) > 1:
            try:
                shape = np.broadcast_shapes(*(a.shape for a in panels))
            except ValueError:
                shapes = ", ".join(str(a.shape) for a in panels)
                raise FunctionArgError(name, f"series arguments have shapes {shapes} that do not line up",
                                       expected="the same (T, N) shape (or a constant)") from None
            call = [np.ascontiguousarray(np.broadcast_to(c, shape)) if isinstance(c, np.ndarray) and c.shape != shape
                    else c for c in call]
        with np.errstate(all="ignore"):
            out = _by_columns(kernel, call)
        return out[:, 0] if all_1d else out

    impl.__name__ = name
    impl.__qualname__ = name
    impl.__doc__ = kernel.__doc__
    return impl


def signature(spec: FunctionSpec) -> str:
    """``sma(x, n)``, ``rsi(x, n=14)``, ``min(a, b, ...)``: how a function is called."""
    parts = [p.name if p.default is None else f"{p.name}={p.default}" for p in spec.params]
    if spec.variadic:
        parts.append("...")
    return f"{spec.name}({', '.join(parts)})"


def _register(name: str, kind: str, params: tuple[Param, ...], returns: str, doc: str, example: str,
              *, variadic: bool = False, min_windows: dict[str, int] | None = None,
              replay: Callable[[dict], tuple[int, int]] | None = None, carried: bool = False) -> Callable:
    """``replay(statics) -> (keep, align)``: a chunk is computed by the whole-array kernel over the
    last ``keep`` input rows before it, from a row that is a multiple of ``align`` (the block grid
    of _Windows), so its rows are the whole run's bit for bit. ``carried``: the kernel takes a
    ``carry`` dict (its recurrence state) and streams itself."""
    def deco(kernel: Callable) -> Callable:
        impl = _series_impl(name, params, kernel, min_windows or {}) if kind == "series" else kernel
        stream = None
        if replay is not None:
            stream = lambda: _Replay(params, impl, replay)  # noqa: E731
        elif carried:
            stream = lambda: _Carried(params, kernel)  # noqa: E731
        FUNCTIONS[name] = FunctionSpec(name, kind, params, returns, impl, doc, example, variadic, stream)  # type: ignore[arg-type]
        return kernel

    return deco


class SeriesStream:
    """One series-function call fed consecutive row chunks: ``step(*args)`` takes the impl's
    arguments for the chunk's rows and returns the chunk's rows of the whole-run result."""

    def __init__(self, params: tuple[Param, ...]):
        self.params = params
        self.rows = 0  # absolute rows consumed so far

    def _split(self, args: tuple) -> tuple[list, dict]:
        statics = {p.name: a for p, a in zip(self.params, args) if p.type in ("window", "number")}
        return list(args), statics


class _Replay(SeriesStream):
    def __init__(self, params, impl, replay):
        super().__init__(params)
        self.impl, self.replay = impl, replay
        self.tail: list | None = None
        self.tail_row = 0  # absolute row of the tail's first row

    def step(self, *args):
        vals, statics = self._split(args)
        keep, align = self.replay(statics)
        series = [i for i, p in enumerate(self.params) if p.type in ("series", "bool_series") and i < len(vals)
                  and np.ndim(vals[i]) > 0]
        t = np.shape(vals[series[0]])[0]
        full = list(vals)
        if self.tail is not None:
            for k, i in enumerate(series):
                full[i] = np.concatenate([self.tail[k], np.asarray(vals[i])])
        out = self.impl(*full)
        res = out[self.rows - self.tail_row:]
        end = self.rows + t
        start = max(0, ((end - keep) // align) * align)
        self.tail = [np.asarray(full[i])[start - self.tail_row:].copy() for i in series]
        self.tail_row, self.rows = start, end
        return res


class _Carried(SeriesStream):
    def __init__(self, params, kernel):
        super().__init__(params)
        self.kernel = kernel
        self.carry: dict = {}

    def step(self, *args):
        vals, _ = self._split(args)
        all_1d = True
        series = [i for i, p in enumerate(self.params) if p.type in ("series", "bool_series")]
        for i in series:
            p = self.params[i]
            all_1d &= np.ndim(vals[i]) <= 1
            vals[i] = _as_panel(p.name, p.name, vals[i], boolean=p.type == "bool_series")
        shape = np.broadcast_shapes(*(vals[i].shape for i in series))  # as the impl does: a constant joins the panel
        for i in series:
            if vals[i].shape != shape:
                vals[i] = np.ascontiguousarray(np.broadcast_to(vals[i], shape))
        with np.errstate(all="ignore"):
            out = self.kernel(*vals, carry=self.carry)
        return out[:, 0] if all_1d else out


def call_series(streams: dict | None, key: str, name: str, *args):
    """``FUNCTIONS[name].impl(*args)`` over whole arrays (``streams`` None), or the next chunk of
    the call ``key``, its carried state kept in ``streams``."""
    spec = FUNCTIONS[name]
    if streams is None:
        return spec.impl(*args)
    s = streams.get(key)
    if s is None:
        s = streams[key] = spec.stream()
    return s.step(*args)


# --------------------------------------------------------------------------------------------
# numerical building blocks (2-D float64 in, 2-D out, axis 0 is time)
# --------------------------------------------------------------------------------------------
def _rows(t: int) -> np.ndarray:
    return np.arange(t)[:, None]


def _first_valid(valid: np.ndarray) -> np.ndarray:
    """(N,) index of each column's first valid row; T for a column that is never valid."""
    t, n = valid.shape
    if t == 0:
        return np.argmax(valid, axis=0)  # numpy's own error for an empty series, as before
    first = np.zeros(n, dtype=np.intp)
    # most columns are valid from row 0: search only the others (a strided argmax is slow)
    late = (~valid[0]).nonzero()[0]
    if late.size:
        sub = valid[:, late]
        f = np.argmax(sub, axis=0)
        f[~sub[f, np.arange(late.size)]] = t
        first[late] = f
    return first


def _has_holes(valid: np.ndarray, first: np.ndarray) -> bool:
    """True when some column has a missing row after its first valid one (not just a prefix).

    Each column has at least ``first`` missing rows, exactly that many when it has no hole:
    so the totals are equal exactly when no column has a hole."""
    return valid.size - np.count_nonzero(valid) != int(first.sum())


def _valid_from(valid: np.ndarray) -> int:
    """A row from which every row is valid: without holes the latest first valid row; with
    holes T (unknown)."""
    first = _first_valid(valid)
    if _has_holes(valid, first):
        return valid.shape[0]
    return int(first.max()) if first.size else 0


def _mask_incomplete(res: np.ndarray, valid: np.ndarray, n: int) -> None:
    """Set NaN where the trailing n-row window ending at t is warm-up or holds a missing row,
    writing only the rows that can be affected."""
    t = valid.shape[0]
    first = _first_valid(valid)
    if _has_holes(valid, first):
        missing = np.cumsum(~valid, axis=0, dtype=np.int32)
        count = missing.copy()
        count[n:] -= missing[:-n]
        incomplete = count > 0
        incomplete[: n - 1] = True
        np.copyto(res, np.nan, where=incomplete)
        return
    lim = min(t, int(first.max(initial=0)) + n - 1)
    np.copyto(res[:lim], np.nan, where=_rows(lim) < (first + (n - 1))[None, :])


def _ffill(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Carry the last valid value over missing rows (rows before the first valid stay as they are)."""
    idx = np.where(valid, _rows(x.shape[0]), 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(x, idx, axis=0)


def _window_scan_inplace(cur: np.ndarray, prev: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
    """Turn ``cur`` (K, n, N) into trailing-window reductions by ``op``, in place, and return it.

    The window ending at row j of block k is rows 0..j of block k (``cur[k]``) plus rows
    j+1..n-1 of block k-1 (given as ``prev[k]``): a prefix scan of one block and a suffix scan of
    the one before (van Herk / Gil-Werman for max and min, exact partial sums for add). Each step
    is one whole-array op over (K, N); numpy's cumsum along a short middle axis measured 2-3x
    slower than this loop over n, and scipy's maximum_filter1d along axis 0 about 2x slower.
    """
    n = cur.shape[1]
    for j in range(1, n):
        op(cur[:, j], cur[:, j - 1], out=cur[:, j])
    if n > 1:
        tail = prev[:, n - 1].copy()
        op(cur[:, n - 2], tail, out=cur[:, n - 2])
        for j in range(n - 2, 0, -1):
            op(tail, prev[:, j], out=tail)
            op(cur[:, j - 1], tail, out=cur[:, j - 1])
    return cur


@dataclass
class _Windows:
    """Trailing n-row windows cut into blocks of n rows, for O(T*N) sums with small rounding error.

    The window ending in row j of block k is rows j+1..n-1 of block k-1 plus rows 0..j of block
    k. Both parts are summed as ``x - c[k]``, where ``c[k]`` is block k's first row: that row lies
    inside every window ending in block k, so the sums never cancel more than the window's own
    spread (a flat window sums exact zeros), and no sum runs longer than n rows. ``c[k]`` is at or
    before every row of block k, so results stay strictly look-back. ``cur`` and ``prev`` are
    (K, n, N) with missing rows zeroed; windows holding those are masked by the caller.
    """

    t: int
    n: int
    c: np.ndarray  # (K, 1, N) reference of each block
    cur: np.ndarray  # block k relative to c[k]
    prev: np.ndarray  # block k-1 relative to c[k] (zeros for k = 0)

    @classmethod
    def cut(cls, x: np.ndarray, valid: np.ndarray, n: int) -> "_Windows":
        t, cols = x.shape
        k = -(-t // n)
        # rows from ``lim`` on are all valid: the masked copies only touch the rows before
        # (a listing's NaN prefix) and the padding after t
        lim = _valid_from(valid)
        miss = ~valid[:lim]
        flat = np.empty((k * n, cols))
        flat[:lim] = 0.0
        np.copyto(flat[:lim], x[:lim], where=valid[:lim])
        flat[lim:t] = x[lim:]
        flat[t:] = 0.0
        xb = flat.reshape(k, n, cols)
        c = xb[:, :1].copy()  # zero where missing: such a block's windows all hold that row
        prev = np.empty_like(xb)
        prev[0] = 0.0
        np.subtract(xb[:-1], c[1:], out=prev[1:])
        # prev's rows of block k are block k-1's rows: missing row r shows at flat row r + n
        # (padding rows lie in the last block, which no block follows)
        pflat = prev.reshape(k * n, cols)
        top = min(lim, (k - 1) * n)
        np.copyto(pflat[n:n + top], 0.0, where=miss[:top])
        xb -= c
        np.copyto(flat[:lim], 0.0, where=miss)
        flat[t:] = 0.0
        return cls(t, n, c, xb, prev)

    def rows(self, a: np.ndarray) -> np.ndarray:
        """(K, n, N) -> (T, N)."""
        return a.reshape(-1, a.shape[-1])[: self.t]


def _windowed(x: np.ndarray, n: int, kernel: Callable) -> np.ndarray:
    """Apply ``kernel(_Windows) -> (K, n, N)`` and mask windows that are warm-up or hold a gap."""
    valid = np.isfinite(x)
    if n > x.shape[0]:
        return np.full(x.shape, np.nan)
    out = _Windows.cut(x, valid, n)
    res = out.rows(kernel(out))
    _mask_incomplete(res, valid, n)
    return res


def _recurrence(u: np.ndarray, decay: float) -> np.ndarray:
    """y[t] = decay * y[t-1] + u[t] along axis 0 with y[-1] = 0, computed in place in ``u``."""
    if u.ndim != 2 or u.shape[1] < _ROW_LOOP_MIN_COLUMNS:
        # imported here: scipy.signal costs ~0.8 s of start-up, and most runs never get here
        from scipy.signal import lfilter

        u[...] = lfilter([1.0], [1.0, -decay], u, axis=0)
        return u
    step = np.empty_like(u[0])
    for t in range(1, u.shape[0]):
        np.multiply(u[t - 1], decay, out=step)
        u[t] += step
    return u


def _before(t: int, row: np.ndarray) -> np.ndarray:
    """(T, N) mask of the rows before each column's ``row``."""
    return _rows(t) < row[None, :]


def _lag(x: np.ndarray, n: int) -> np.ndarray:
    out = np.empty_like(x)
    out[:n] = np.nan
    if n < x.shape[0]:
        out[n:] = x[:-n]
    return out


def _seed_sum(rows: np.ndarray, lone: bool) -> np.ndarray:
    """Sum of the (n, k) seed rows over axis 0, by the same float operations for a column however
    many columns seed with it. numpy's ``sum(axis=0)`` adds row by row when k > 1 but runs its
    pairwise sum down a single column; a one-column panel (``lone``) keeps that pairwise sum (the
    results as they always were), any other lone seeding column is added row by row too, so a
    chunk where one column seeds gives what the whole run, where several seed, gives."""
    if lone or rows.shape[1] > 1:
        return rows.sum(axis=0)
    total = rows[0].copy()
    for r in rows[1:]:
        total += r
    return total


def _wilder(v: np.ndarray, first: np.ndarray, n: int, carry: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Wilder's smoothing of ``v`` (modified in place; rows <= first are ignored): the seed is the
    mean of rows first+1..first+n, then avg[t] = avg[t-1] * (n-1)/n + v[t]/n.
    Returns (averages, row of the first average per column).

    ``carry`` (chunked runs; ``first`` is then chunk-relative, negative for a column that started
    in an earlier chunk): the last n raw rows before the chunk (a seed's rows may lie there) and
    the recurrence's last value, 0 until the seed, as in the whole run."""
    t, cols_n = v.shape
    seed_row = first + n
    cols = np.nonzero((seed_row >= 0) & (seed_row < t))[0]
    src, off = v, 0
    if carry is not None:
        src = np.concatenate([carry.get("tail", np.zeros((n, cols_n))), v])
        off = n
        carry["tail"] = src[-n:].copy()
    seed = None
    if cols.size:
        take = first[cols][None, :] + (1 + off) + np.arange(n)[:, None]
        seed = _seed_sum(np.take_along_axis(src[:, cols], take, axis=0), lone=cols_n == 1) / n
    v /= n
    np.copyto(v, 0.0, where=_before(t, seed_row + 1))
    if seed is not None:
        v[seed_row[cols], cols] = seed
    if carry is None:
        return _recurrence(v, (n - 1) / n), seed_row
    # avg[a] = v[a] + decay * avg[a-1]: the recurrence continued from the row before the chunk
    avg = _recurrence(np.concatenate([carry.get("avg", np.zeros(cols_n))[None], v]), (n - 1) / n)[1:]
    carry["avg"] = avg[-1].copy()
    return avg, seed_row


def _start(xs: tuple[np.ndarray, ...], valid: np.ndarray):
    """(first valid row per column, the series with holes after the start carried forward, hole
    mask or None). ``valid`` is the rows where every one of ``xs`` is valid."""
    first = _first_valid(valid)
    if not _has_holes(valid, first):
        return first, xs, None
    holes = ~valid & ~_before(valid.shape[0], first + 1)
    return first, tuple(_ffill(x, valid) for x in xs), holes


def _start_carried(xs: tuple[np.ndarray, ...], valid: np.ndarray, carry: dict):
    """``_start`` for a chunk after others: ``first`` relative to the chunk (negative when the
    column started in an earlier chunk), holes carried from the last value before the chunk."""
    t = valid.shape[0]
    first = np.where(carry["started"], carry["first"] - carry["row"], _first_valid(valid))
    holes = ~valid & ~_before(t, first + 1)
    if not holes.any():
        return first, xs, None
    had = np.concatenate([carry["started"][None], valid])
    return first, tuple(_ffill(np.concatenate([last[None], x]), had)[1:] for last, x in zip(carry["last"], xs)), holes


def _keep_start(carry: dict, first: np.ndarray, xfs: tuple[np.ndarray, ...], t: int) -> None:
    row = carry.get("row", 0)
    carry["started"] = first < t
    carry["first"] = first + row
    carry["last"] = [xf[-1].copy() for xf in xfs]
    carry["row"] = row + t


# --------------------------------------------------------------------------------------------
# series functions
# --------------------------------------------------------------------------------------------
_S, _W, _N, _B = "series", "window", "number", "bool_series"
_X = Param("x", _S)
_WIN = Param("n", _W)


@_register("sma", "series", (_X, _WIN), "number", "simple moving average of x over the last n bars", "sma(close, 50)", replay=lambda s: (s["n"], s["n"]))
def _sma(x: np.ndarray, n: int) -> np.ndarray:
    def kernel(w: _Windows) -> np.ndarray:
        s1 = _window_scan_inplace(w.cur, w.prev)
        s1 /= n
        s1 += w.c
        return s1

    return _windowed(x, n, kernel)


@_register("rolling_sum", "series", (_X, _WIN), "number", "sum of x over the last n bars", "rolling_sum(volume, 24)", replay=lambda s: (s["n"], s["n"]))
def _rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    def kernel(w: _Windows) -> np.ndarray:
        s1 = _window_scan_inplace(w.cur, w.prev)
        s1 += n * w.c
        return s1

    return _windowed(x, n, kernel)


@_register("wma", "series", (_X, _WIN), "number",
           "linearly weighted moving average (weight n on the newest bar, 1 on the oldest)", "wma(close, 20)", replay=lambda s: (s["n"], s["n"]))
def _wma(x: np.ndarray, n: int) -> np.ndarray:
    def kernel(w: _Windows) -> np.ndarray:
        # The window ending at row j of a block holds rows j+1..n-1 of the previous block (at
        # position i - n) and rows 0..j of this one (position i); its weights are position - (j - n).
        pos = np.arange(n, dtype=np.float64)[None, :, None]
        sp = _window_scan_inplace(pos * w.cur, (pos - n) * w.prev)
        s1 = _window_scan_inplace(w.cur, w.prev)
        s1 *= pos - n
        sp -= s1
        sp /= n * (n + 1) / 2.0
        sp += w.c
        return sp

    return _windowed(x, n, kernel)


def _moments(x: np.ndarray, n: int, zscore: bool) -> np.ndarray:
    """Rolling sample std (ddof=1) of x, or the z-score of the newest value in its window."""

    def kernel(w: _Windows) -> np.ndarray:
        newest = w.cur.copy() if zscore else None
        s2 = _window_scan_inplace(w.cur * w.cur, w.prev * w.prev)
        s1 = _window_scan_inplace(w.cur, w.prev)
        s1 /= n  # now the window mean relative to c
        # A flat window is all zeros relative to its own first row, so its spread is exactly 0.
        sd = s2
        sd -= n * (s1 * s1)
        sd /= n - 1
        np.maximum(sd, 0.0, out=sd)
        np.sqrt(sd, out=sd)
        if not zscore:
            return sd
        newest -= s1
        flat = sd == 0
        sd[flat] = 1.0
        newest /= sd
        newest[flat] = np.nan
        return newest

    return _windowed(x, n, kernel)


@_register("std", "series", (_X, _WIN), "number",
           "rolling sample standard deviation (ddof=1) of x over the last n bars", "std(pct_change(close), 24)",
           min_windows={"n": 2}, replay=lambda s: (s["n"], s["n"]))
def _std(x: np.ndarray, n: int) -> np.ndarray:
    return _moments(x, n, zscore=False)


@_register("zscore", "series", (_X, _WIN), "number",
           "(x - sma(x, n)) / std(x, n); NaN where the window is flat", "zscore(close, 48) < -2",
           min_windows={"n": 2}, replay=lambda s: (s["n"], s["n"]))
def _zscore(x: np.ndarray, n: int) -> np.ndarray:
    return _moments(x, n, zscore=True)


@_register("ema", "series", (_X, _WIN), "number",
           "exponential moving average, alpha = 2/(n+1), seeded with the first value; NaN for the first n-1 bars",
           "ema(close, 20)", carried=True)
def _ema(x: np.ndarray, n: int, carry: dict | None = None) -> np.ndarray:
    """``carry`` (chunked runs): the previous chunks' state: absolute row, first valid row, last
    carried-forward value and the recurrence's last value per column."""
    valid = np.isfinite(x)
    t = x.shape[0]
    first, (xf,), holes = _start_carried((x,), valid, carry) if carry else _start((x,), valid)
    alpha = 2.0 / (n + 1)
    u = alpha * xf
    np.copyto(u, 0.0, where=_before(t, first + 1))
    cols = np.nonzero((first >= 0) & (first < t))[0]
    u[first[cols], cols] = x[first[cols], cols]  # y[first] = x[first] exactly
    if carry:  # y[a] = u[a] + decay * y[a-1]: the recurrence continued from the last row before
        y = _recurrence(np.concatenate([carry["y"][None], u]), 1.0 - alpha)[1:]
    else:
        y = _recurrence(u, 1.0 - alpha)
    if carry is not None:
        _keep_start(carry, first, (xf,), t)
        carry["y"] = y[-1].copy()
    np.copyto(y, np.nan, where=_before(t, first + (n - 1)))
    if holes is not None:
        y[holes] = np.nan
    return y


@_register("rsi", "series", (_X, Param("n", _W, 14)), "number",
           "relative strength index with Wilder's smoothing, 0..100 (50 when flat)", "rsi(close, 14) < 30", carried=True)
def _rsi(x: np.ndarray, n: int, carry: dict | None = None) -> np.ndarray:
    """``carry`` (chunked runs): ema's start state, plus each average's Wilder state (_wilder)."""
    valid = np.isfinite(x)
    more = bool(carry)  # a chunk after others
    first, (xf,), holes = _start_carried((x,), valid, carry) if more else _start((x,), valid)
    delta = np.empty_like(x)
    if more:  # the previous bar is the last one of the chunk before
        np.subtract(xf[0], carry["last"][0], out=delta[0])
    else:
        delta[0] = 0.0
    np.subtract(xf[1:], xf[:-1], out=delta[1:])
    np.nan_to_num(delta, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # rows up to each first valid bar
    gain = np.maximum(delta, 0.0)
    loss = np.subtract(gain, delta, out=delta)  # == max(-delta, 0), exactly
    gain, seed_row = _wilder(gain, first, n, None if carry is None else carry.setdefault("gain", {}))
    loss, _ = _wilder(loss, first, n, None if carry is None else carry.setdefault("loss", {}))
    if carry is not None:
        _keep_start(carry, first, (xf,), x.shape[0])
    total = loss
    total += gain
    flat = total == 0.0
    gain /= total  # divide first: gain <= total keeps the ratio <= 1, so the RSI <= 100 exactly
    gain *= 100.0
    gain[flat] = 50.0
    np.copyto(gain, np.nan, where=_before(x.shape[0], seed_row))
    if holes is not None:
        gain[holes] = np.nan
    return gain


@_register("atr", "series", (Param("high", _S), Param("low", _S), Param("close", _S), Param("n", _W, 14)), "number",
           "average true range with Wilder's smoothing (first value at bar n, from true ranges 1..n)",
           "atr(high, low, close, 14) / close", carried=True)
def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, carry: dict | None = None) -> np.ndarray:
    """``carry`` (chunked runs): the start state of the three series (the last close is the first
    bar's previous close) and the Wilder state (_wilder)."""
    valid = np.isfinite(high) & np.isfinite(low) & np.isfinite(close)
    more = bool(carry)
    xs = (high, low, close)
    first, (high, low, close), holes = _start_carried(xs, valid, carry) if more else _start(xs, valid)
    prev = _lag(close, 1)
    if more:
        prev[0] = carry["last"][2]
    tr = high - low
    np.maximum(tr, np.abs(high - prev), out=tr)
    np.maximum(tr, np.abs(low - prev), out=tr)
    np.nan_to_num(tr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # rows up to each first valid bar
    atr, seed_row = _wilder(tr, first, n, None if carry is None else carry.setdefault("wilder", {}))
    if carry is not None:
        _keep_start(carry, first, (high, low, close), tr.shape[0])
    np.copyto(atr, np.nan, where=_before(tr.shape[0], seed_row))
    if holes is not None:
        atr[holes] = np.nan
    return atr


@_register("lag", "series", (_X, Param("n", _W, 1)), "number", "value of x n bars ago", "close > lag(close, 24)", replay=lambda s: (s["n"], 1))
def _lag_fn(x: np.ndarray, n: int) -> np.ndarray:
    out = _lag(x, n)
    out[~np.isfinite(out)] = np.nan
    return out


@_register("pct_change", "series", (_X, Param("n", _W, 1)), "number",
           "fractional change of x over n bars: x / lag(x, n) - 1 (NaN where that is not finite)",
           "pct_change(close, 24) > 0.05", replay=lambda s: (s["n"], 1))
def _pct_change(x: np.ndarray, n: int) -> np.ndarray:
    # x / lag(x, n) - 1 without building the lagged copy: the first n rows divide by NaN
    out = np.empty_like(x)
    out[:n] = np.nan
    if n < x.shape[0]:
        np.divide(x[n:], x[:-n], out=out[n:])
        out[n:] -= 1.0
    np.copyto(out, np.nan, where=~np.isfinite(out))
    return out


@_register("returns", "series", (_X, Param("n", _W, 1)), "number", "alias of pct_change", "returns(close, 1)", replay=lambda s: (s["n"], 1))
def _returns(x: np.ndarray, n: int) -> np.ndarray:
    return _pct_change(x, n)


def _rolling_extreme(x: np.ndarray, n: int, largest: bool) -> np.ndarray:
    valid = np.isfinite(x)
    t, cols = x.shape
    if n > t:
        return np.full(x.shape, np.nan)
    k = -(-t // n)
    fill = -np.inf if largest else np.inf
    xb = np.full((k * n, cols), fill)
    np.copyto(xb[:t], x, where=valid)
    xb = xb.reshape(k, n, cols)
    prev = np.empty_like(xb)
    prev[0] = fill
    prev[1:] = xb[:-1]
    out = _window_scan_inplace(xb, prev, np.maximum if largest else np.minimum).reshape(-1, cols)[:t]
    _mask_incomplete(out, valid, n)
    return out


@_register("rolling_max", "series", (_X, _WIN), "number", "highest x over the last n bars (this bar included)",
           "close >= rolling_max(high, 24*7)", replay=lambda s: (s["n"], s["n"]))
def _rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    return _rolling_extreme(x, n, largest=True)


@_register("rolling_min", "series", (_X, _WIN), "number", "lowest x over the last n bars (this bar included)",
           "close <= rolling_min(low, 24)", replay=lambda s: (s["n"], s["n"]))
def _rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    return _rolling_extreme(x, n, largest=False)


@_register("crossover", "series", (Param("a", _S), Param("b", _S)), "bool",
           "a > b on this bar and a <= b on the previous bar", "crossover(ema(close, 12), ema(close, 26))", replay=lambda s: (1, 1))
def _crossover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cross(a, b, np.greater, np.less_equal)


def _cross(a: np.ndarray, b: np.ndarray, now: np.ufunc, before: np.ufunc) -> np.ndarray:
    """``now(a, b) & before(lag(a, 1), lag(b, 1))``: row 0 compares with NaN, so it is False."""
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
    if out.shape[0] > 1:
        now(a[1:], b[1:], out=out[1:])
        out[1:] &= before(a[:-1], b[:-1])
    return out


@_register("crossunder", "series", (Param("a", _S), Param("b", _S)), "bool",
           "a < b on this bar and a >= b on the previous bar", "crossunder(close, sma(close, 50))", replay=lambda s: (1, 1))
def _crossunder(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cross(a, b, np.less, np.greater_equal)


@_register("bars_since", "series", (Param("cond", _B),), "number",
           "bars since cond was last true (0 on a bar where it is true; NaN if it never was)",
           "bars_since(crossover(close, sma(close, 50))) <= 3", carried=True)
def _bars_since(cond: np.ndarray, carry: dict | None = None) -> np.ndarray:
    row0 = carry.get("row", 0) if carry else 0
    rows = _rows(cond.shape[0]) + row0  # absolute rows: the counter runs on over chunk borders
    last = np.where(cond, rows, -1)
    if carry:
        np.maximum(last[0], carry["last"], out=last[0])
    np.maximum.accumulate(last, axis=0, out=last)
    if carry is not None:
        carry["row"], carry["last"] = row0 + cond.shape[0], last[-1].copy()
    return np.where(last >= 0, (rows - last).astype(np.float64), np.nan)


# --------------------------------------------------------------------------------------------
# element-wise functions (any shape, scalars included; kept lean: they run every cycle)
# --------------------------------------------------------------------------------------------
def _f(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _out(a: np.ndarray):
    """0-d results come back as numpy scalars, arrays as arrays."""
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else a


@_register("abs", "elementwise", (_X,), "number", "absolute value", "abs(pct_change(close, 24))")
def _abs(x):
    return _out(np.abs(_f(x)))


@_register("min", "elementwise", (Param("a", _S), Param("b", _S)), "number",
           "smallest of the arguments, element by element (NaN if any is NaN)", "min(close, sma(close, 20))",
           variadic=True)
def _min(*xs):
    return _fold("min", np.minimum, xs)


@_register("max", "elementwise", (Param("a", _S), Param("b", _S)), "number",
           "largest of the arguments, element by element (NaN if any is NaN)", "max(atr(high, low, close), 0.01 * close)",
           variadic=True)
def _max(*xs):
    return _fold("max", np.maximum, xs)


def _fold(name: str, ufunc, xs: tuple) -> np.ndarray:
    """ufunc over 2+ arguments, left to right (min and max)."""
    if len(xs) < 2:
        raise FunctionArgError(name, f"takes at least 2 arguments, {len(xs)} given", expected=f"{name}(a, b, ...)")
    out = ufunc(_f(xs[0]), _f(xs[1]))
    for x in xs[2:]:
        out = ufunc(out, _f(x))
    return _out(out)


@_register("clip", "elementwise", (_X, Param("lo", _S), Param("hi", _S)), "number",
           "x bounded to [lo, hi]", "clip(pct_change(close, 24), -0.1, 0.1)")
def _clip(x, lo, hi):
    lo_, hi_ = _f(lo), _f(hi)
    if lo_.ndim == 0 and hi_.ndim == 0 and lo_ > hi_:
        raise FunctionArgError("clip", f"lower bound {float(lo_):g} is above upper bound {float(hi_):g}",
                               expected="lo <= hi")
    return _out(np.minimum(np.maximum(_f(x), lo_), hi_))


@_register("log", "elementwise", (_X,), "number", "natural logarithm (NaN for x <= 0)", "log(close / lag(close, 24))")
def _log(x):
    x = _f(x)
    with np.errstate(all="ignore"):
        return _out(detmath.log(np.where(x > 0, x, np.nan)))


@_register("sqrt", "elementwise", (_X,), "number", "square root (NaN for x < 0)", "std(pct_change(close), 24) * sqrt(24)")
def _sqrt(x):
    x = _f(x)
    with np.errstate(all="ignore"):
        return _out(np.sqrt(np.where(x >= 0, x, np.nan)))


@_register("exp", "elementwise", (_X,), "number", "e to the power x (inf on overflow)", "exp(log(close) - log(lag(close)))")
def _exp(x):
    with np.errstate(all="ignore"):
        return _out(detmath.exp(_f(x)))


@_register("sign", "elementwise", (_X,), "number", "-1, 0 or 1 by the sign of x (NaN stays NaN)", "sign(pct_change(close, 24))")
def _sign(x):
    return _out(np.sign(_f(x)))


@_register("round", "elementwise", (_X, Param("ndigits", _N, 0)), "number",
           "x rounded to ndigits decimals: numpy's rounding of x * 10**ndigits, halves to even, "
           "vectorised; unlike Python's round() it gives 2.675 -> 2.68 (2.675 is stored as 2.67499...)", "round(rsi(close), 0)")
def _round(x, ndigits=0):
    if isinstance(ndigits, (bool, np.bool_)) or not isinstance(ndigits, numbers.Real) or float(ndigits) != int(ndigits):
        raise FunctionArgError("round", f"argument 'ndigits' is {ndigits!r}", expected="a whole number of decimals")
    return _out(np.round(_f(x), int(ndigits)))


@_register("nan_to", "elementwise", (_X, Param("value", _S)), "number",
           "x with NaN replaced by value", "nan_to(rsi(close), 50)")
def _nan_to(x, value):
    x = _f(x)
    return _out(np.where(np.isnan(x), _f(value), x))


# --------------------------------------------------------------------------------------------
# the generated ops reference reads this
# --------------------------------------------------------------------------------------------
def describe() -> list[dict]:
    """One entry per function, in registry order: name, signature, returns, kind, doc, example, params."""
    return [
        {
            "name": s.name,
            "signature": signature(s),
            "returns": s.returns,
            "kind": s.kind,
            "doc": s.doc,
            "example": s.example,
            "params": [{"name": p.name, "type": p.type, "default": p.default} for p in s.params],
        }
        for s in FUNCTIONS.values()
    ]
