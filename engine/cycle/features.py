"""The named series every rule can read, built once from a MarketData panel."""
from __future__ import annotations

import weakref

import numpy as np

from engine.market.data import MarketData, timeframe_ms


def ffill(a: np.ndarray, last: np.ndarray | None = None) -> np.ndarray:
    """Forward-fill NaN down each column (a leading NaN prefix stays NaN).

    ``last``: the row before ``a`` (a chunk's carried last filled row): the result is the rows
    after it of ``ffill`` of ``[last; a]``, bit for bit, without building that copy. Only columns
    holding a NaN are looked at (most hold none: found by their sums, one read of ``a`` with no
    temporary; an infinity's sum may flag a column for nothing), and of those only the ones with a
    hole after their first value are touched."""
    out = a.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        maybe = np.flatnonzero(np.isnan(np.add.reduce(a, axis=0)))
    if not maybe.size:
        return out
    sub = a[:, maybe] if last is None else np.concatenate([last[maybe][None, :], a[:, maybe]])
    nan = np.isnan(sub)
    t = sub.shape[0]
    first = np.argmin(nan, axis=0)  # first non-NaN row (0 for an all-NaN column)
    holes = nan.sum(axis=0) > np.where(nan.all(axis=0), t, first)
    cols = np.flatnonzero(holes)
    if cols.size:
        sub = sub[:, cols]
        idx = np.where(np.isnan(sub), 0, np.arange(t)[:, None])
        np.maximum.accumulate(idx, axis=0, out=idx)
        filled = sub[idx, np.arange(cols.size)[None, :]]
        out[:, maybe[cols]] = filled if last is None else filled[1:]
    return out


def last_filled(a: np.ndarray, last: np.ndarray | None = None) -> np.ndarray:
    """``ffill(a, last)[-1]`` without filling ``a``: each column's last value, else ``last``'s
    (what the next chunk carries of a series no rule read)."""
    row = a[-1].copy()
    miss = np.flatnonzero(np.isnan(row))
    if miss.size:
        sub = a[:, miss]
        seen = ~np.isnan(sub)
        any_ = seen.any(axis=0)
        at = sub.shape[0] - 1 - np.argmax(seen[::-1], axis=0)  # the last non-NaN row
        got = np.where(any_, sub[at, np.arange(miss.size)], row[miss])
        if last is not None:  # a column with no value in the chunk keeps the carried one, if any
            keep = ~any_ & ~np.isnan(last[miss])
            got[keep] = last[miss][keep]
        row[miss] = got
    return row


def cumsum_rows(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=0, dtype=float64)`` of a (T, N) array, row by row.

    Each row is one whole-row add onto the previous sum, the same additions in the same
    order as numpy's (so bit-identical), but faster than numpy's strided accumulate along
    axis 0 on a wide panel: about 2x at 8,784 x 256 and 4-7x at 8,784 x 2,000
    (``python benchmarks/claims.py``)."""
    if a.ndim != 2 or a.shape[1] < 256:  # narrow: numpy's own loop wins over one call per row
        return np.cumsum(a, axis=0, dtype=np.float64)
    out = np.empty(a.shape, dtype=np.float64)
    if a.shape[0]:
        out[0] = a[0]
        add = np.add
        for t in range(1, a.shape[0]):
            add(out[t - 1], a[t], out=out[t])
    return out


def _zero_nan(a: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(a)`` into a new array, with one pass when there is no infinity."""
    out = a.copy(order="K")  # keep the layout: later row sums depend on it
    np.copyto(out, 0.0, where=np.isnan(out))
    if np.isinf(out).any():
        return np.nan_to_num(a)
    return out


class LazySeries(dict):
    """Named series built on first use: a rule set that never reads ``high`` never pays for it."""

    def __init__(self, builders: dict):
        super().__init__()
        self._builders = builders

    def __missing__(self, key: str) -> np.ndarray:
        try:
            build = self._builders[key]
        except KeyError:
            raise KeyError(key) from None
        self[key] = value = build()
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._builders


def _unowned(series: LazySeries) -> LazySeries:
    """What a series' own builders read it through: a weak reference. A builder closing over
    the series itself makes a cycle (series -> builder -> series) that reference counting never
    frees; a chunk's market and every panel built from it would then wait for the cyclic
    collector, which runs rarely (numpy arrays do not count towards its thresholds): a month
    of 1-minute bars for 200 products (~1.4 GiB) stayed alive month after month."""
    return weakref.proxy(series)


def bars_per_day(timeframe: str) -> int:
    return max(1, 86_400_000 // timeframe_ms(timeframe))


FFILLED = ("open", "high", "low", "close", "spread_bps")


def _after(last: np.ndarray | None, a: np.ndarray) -> np.ndarray:
    """``a`` with the carried last row ``last`` on top (nothing on the run's first chunk)."""
    return a if last is None else np.concatenate([last[None, :], a])


def _drop(last: np.ndarray | None, a: np.ndarray) -> np.ndarray:
    return a if last is None else a[1:]


def market_series(market: MarketData) -> LazySeries:
    """Market columns (T, N), forward-filled over gaps, plus derived and static columns.

    Each is computed the first time a rule (or the backtest) reads it. The whole run is the
    one-chunk case of :class:`MarketSeries`."""
    return MarketSeries(market.timeframe).series(market, 0)


class MarketSeries:
    """``market_series`` over consecutive row chunks of one market (engine/cycle/chunks.py), each
    chunk's rows equal bit for bit to the same rows of the whole run's: what a row needs from
    earlier rows is carried over the border (the forward-fill's last values, the listing counts,
    the 24h volume sum's last day of running sums)."""

    def __init__(self, timeframe: str):
        self.day = bars_per_day(timeframe)
        self.last: dict[str, np.ndarray | None] = dict.fromkeys(FFILLED)  # last forward-filled rows
        self.listed: np.ndarray | None = None  # bars_listed's last row
        self.csum: np.ndarray | None = None  # the running volume sums of the last ``day`` rows

    def series(self, m: MarketData, row0: int) -> LazySeries:
        t, n = m.n_bars, m.n_symbols
        static = lambda values, dtype=None: np.broadcast_to(np.asarray(values, dtype=dtype)[None, :], (t, n))  # noqa: E731
        s: LazySeries

        def filled(name):
            last = self.last[name]
            return lambda: ffill(getattr(m, name), last)

        def volume():
            # the bar's volume, 0 for a listed product with no bar, NaN before its listing (a bar
            # implies a listing: no (T, N) temporary for the inner choice)
            out = np.where(s["available"], m.volume, 0.0)
            np.copyto(out, np.nan, where=np.isnan(s["close"]))
            return out

        def running():
            # the run's running sum of the volume continued (the same additions in the same
            # order): the carried last sum added to the chunk's first row, then summed on
            v = _zero_nan(s["volume_usd"])
            if self.csum is not None:
                v[0] += self.csum[-1]
            csum = cumsum_rows(v)
            tail = self.csum if self.csum is not None else csum[:0]
            s.csum = csum[-self.day:].copy() if t >= self.day else np.concatenate([tail, csum])[-self.day:]
            return csum

        def vol24():
            # the running sum minus its value ``day`` rows earlier, from the carried tail where
            # that is before the chunk
            csum = running()
            tail = self.csum if self.csum is not None else csum[:0]
            out = np.empty_like(csum)
            k = max(0, min(t, self.day - row0))  # rows before the run's first full day
            out[:k] = csum[:k]
            if k < t:
                before = max(0, self.day - k)  # lagged rows in the tail, then the chunk's own
                lagged = csum[k - self.day:t - self.day] if not before else \
                    np.concatenate([tail[tail.shape[0] - before:], csum[:max(0, t - self.day)]])[:t - k]
                np.subtract(csum[k:], lagged, out=out[k:])
            np.copyto(out, np.nan, where=np.isnan(s["close"]))
            return out

        def bars_listed():
            listed = ~np.isnan(s["close"])
            if self.listed is None:
                return cumsum_rows(listed)
            x = listed.astype(np.float64)  # counts: exact in any order
            x[0] += self.listed
            return cumsum_rows(x)

        series = LazySeries({
            **{name: filled(name) for name in FFILLED},
            "volume": volume,
            "volume_usd": lambda: s["volume"] * s["close"],
            "volume_usd_24h": vol24,
            "bars_listed": bars_listed,
            "available": lambda: ~np.isnan(m.close),
            "theme": lambda: static([i.theme for i in m.info]),
            "symbol": lambda: static(list(m.symbols)),
            "min_notional": lambda: static([i.min_notional for i in m.info], np.float64),
        })
        series.running = running  # what advance builds when no rule read volume_usd_24h
        s = _unowned(series)
        return series

    def advance(self, s: LazySeries, m: MarketData) -> None:
        """Carry the chunk's last rows. A series no rule read is not built for that: its last row
        comes from the chunk's bars (the forward-filled last values, the listing counts); only
        the running volume sum is built whole (its last day of sums depends on every row)."""
        for name in FFILLED:
            built = dict.__contains__(s, name)
            self.last[name] = s[name][-1].copy() if built else last_filled(getattr(m, name), self.last[name])
        if dict.__contains__(s, "bars_listed"):
            self.listed = s["bars_listed"][-1].copy()
        else:  # the rows with a close so far, a count: exact whatever the order of additions
            count = (~np.isnan(s["close"])).sum(axis=0).astype(np.float64)
            self.listed = count if self.listed is None else self.listed + count
        if not dict.__contains__(s, "volume_usd_24h"):
            s.running()  # sets s.csum
        self.csum = s.csum


def index_mean_returns(c: np.ndarray) -> np.ndarray:
    """The index return of rows 1.. of ``c`` (the included products' forward-filled closes,
    laid out as ``close[:, include]`` lays them out): the mean return of the products that
    traded at both t-1 and t, 0 where none did. Each row's value depends on that row's two
    closes only (the row sum runs over the columns in order), so a block of bars or a chunk of
    them gives the whole run's rows (engine/cycle/chunks.py)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[1:] / c[:-1] - 1.0
        nan = np.isnan(r)
        cnt = r.shape[1] - nan.sum(axis=1)
        np.copyto(r, 0.0, where=nan)
        return np.where(cnt > 0, r.sum(axis=1) / np.maximum(cnt, 1), 0.0)


def index_series(market: MarketData, close_ffilled: np.ndarray, exclude_themes: tuple[str, ...]) -> LazySeries:
    """An equal-weight index of the included products, shaped (T, 1).

    The index return at t is the mean return of the products that traded at t-1 and t, so
    a listing or a gap neither jumps nor drops the index. ``volume_usd`` and ``breadth`` are
    built only when a regime rule reads them. The whole run is the one-chunk case of
    :class:`IndexSeries`.
    """
    return IndexSeries(market, exclude_themes, streams=None).series(market, close_ffilled)


class IndexSeries:
    """``index_series`` over consecutive row chunks: the running product of the index returns
    continued, the previous chunk's last closes for the first row's return, a stream for
    breadth's 50-bar mean (``streams``: {} for a chunked run, None for whole arrays)."""

    def __init__(self, m: MarketData, exclude_themes: tuple[str, ...], streams: dict | None):
        self.include = np.array([i.theme not in exclude_themes for i in m.info])
        self.some = bool(self.include.any())
        self.prod: float | None = None  # the last value of cumprod(1 + r)
        self.prev: np.ndarray | None = None  # (N,) the last forward-filled closes
        self.streams = streams
        self.built: set[str] = set()  # the series read so far: each is built on every later chunk

    def _included(self, a: np.ndarray) -> np.ndarray:
        # the same indexing as a whole-panel ``a[:, include]``: numpy lays the result out
        # column-major, and the row sums below depend on that layout (sequential, not pairwise)
        return a[:, self.include] if self.some else a

    def series(self, m: MarketData, close: np.ndarray) -> LazySeries:
        t = close.shape[0]
        step = max(1, (1 << 21) // max(int(self.include.sum()) if self.some else len(self.include), 1))

        def level():
            # blocks of bars: the returns of a block and their NaN-aware row means, exactly the
            # per-row sums np.nansum gives over the whole (T, N) returns, without (T, N) temporaries
            self.built.add("close")
            r_mean = np.zeros(t)
            first = 0 if self.prev is not None else 1  # the run's row 0 has no return
            for a in range(first, t, step):
                b = min(a + step, t)
                # the closes of rows a - 1 .. b - 1, the row before the chunk being the carried one
                block = close[a - 1:b] if a else np.concatenate([self.prev[None, :], close[:b]])
                r_mean[a:b] = index_mean_returns(self._included(block))
            if self.prod is None:
                p = np.cumprod(1.0 + r_mean)
            else:  # the product continued: prod x (1 + r0) x ..., the whole run's multiplications
                p = np.cumprod(np.concatenate(([self.prod], 1.0 + r_mean)))[1:]
            s.prod = float(p[-1]) if t else self.prod
            return (100.0 * p)[:, None]

        def vol_usd():
            self.built.add("volume_usd")
            inc = self.include
            v, c = m.volume, close
            if t == 1:
                # numpy sums a single row of the (rows, products) panel pairwise, several rows
                # product by product in order (the whole run's way): the row twice, the second kept
                v, c = np.concatenate([v, v]), np.concatenate([c, c])
            return np.nansum(np.nan_to_num(v[:, inc] * c[:, inc]), axis=1)[-t:, None]

        def breadth():
            # share of products above their 50-bar mean (look-back only)
            from engine.rules.functions import call_series
            self.built.add("breadth")
            c = self._included(close)
            sma50 = call_series(self.streams, "breadth", "sma", c, 50)
            with np.errstate(invalid="ignore"):
                above = (c > sma50).sum(axis=1)
                counted = (~np.isnan(sma50)).sum(axis=1)
            return np.where(counted > 0, above / np.maximum(counted, 1), np.nan)[:, None]

        series = LazySeries({"close": level, "volume_usd": vol_usd, "breadth": breadth})
        series.prod = self.prod
        s = _unowned(series)
        return series

    def advance(self, s: LazySeries, close: np.ndarray) -> None:
        s["close"]  # the running product goes on whether or not a rule read the index this chunk
        for k in self.built:
            s[k]
        self.prod = s.prod
        self.prev = close[-1].copy()
