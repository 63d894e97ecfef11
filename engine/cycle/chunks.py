"""Prepare a run chunk by chunk: memory that follows the chunk's length, not the run's.

:class:`ChunkedPreparer` is fed consecutive row chunks of one market (same symbols, time order)
and returns for each a :class:`Prepared` of those rows (chunk-local rows, ``extra["row0"]``)
equal, array for array and bit for bit, to the same rows of the whole-array ``prepare``. What a
row needs from earlier rows is carried over the border: the forward-fill's last values, the
24h volume sum's last day of running sums, the listing counts, the regime index's running
product, one stream per series-function call (engine/rules/expr.py ``ChunkStore``), the last
regime, and the universe's members and next rebuild deadline.

Not yet (refused with an error naming the rule): coarser bars (``on("1d", ...)``, a regime
file's ``timeframe:``), a book of several strategies, and functions without a stream (rsi, atr).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from engine.cycle.features import LazySeries, _zero_nan, bars_per_day, cumsum_rows, ffill, index_mean_returns
from engine.cycle.memory import reuse_freed_memory
from engine.cycle.prepare import Prepared, RuleGroup, _group, check_regime_index, regime_labels, select_members
from engine.errors import UserError
from engine.market.data import MarketData
from engine.rules.errors import RuleError, Where
from engine.rules.expr import ChunkStore
from engine.rules.functions import FUNCTIONS, call_series
from engine.rules.loader import RuleSet, check_lock_themes

FFILLED = ("open", "high", "low", "close", "spread_bps")


def _expressions(rules: RuleSet):
    """(where, expression) for every expression the preparer or the loop reads from the store."""
    for _, r in rules.all_rules():
        yield r.where, r.when
    u, s = rules.universe, rules.strategy
    file = lambda rs, default: rs[0].where.file if rs else default  # noqa: E731
    if u.rank_by is not None:
        yield Where(file(u.filters, "universe file"), "", "rank.by"), u.rank_by
    strategy_file = file(s.entries + s.exits, "strategy file")
    yield Where(strategy_file, "", "size"), s.size
    if s.priority is not None:
        yield Where(strategy_file, "", "priority"), s.priority
    for pr in s.protect.prices:
        if pr.distance is not None:
            yield pr.where, pr.distance


def check_chunkable(rules: RuleSet) -> None:
    """Refuse what the chunked path cannot compute yet, naming the rule and the expression."""
    if rules.book is not None:
        raise UserError("the chunked backtest cannot run a book of strategies yet (config 'book'); "
                        "expected one strategy file, or the in-memory backtest")
    if rules.regime.timeframe is not None:
        raise RuleError(Where(rules.regime.exclude_where.file, "", "timeframe"),
                        f"the regime file reads {rules.regime.timeframe} bars: the chunked backtest reads the "
                        "data's own bars only", expected="no timeframe: in the regime file, or the in-memory backtest")
    for where, expr in _expressions(rules):
        for f in expr.features:
            if f.startswith("on("):
                raise RuleError(where, f"{f} reads coarser bars: the chunked backtest cannot carry on() over "
                                       "chunk borders yet", expected="the data's own bars, or the in-memory backtest")
            spec = FUNCTIONS.get(f.split("(", 1)[0]) if "(" in f else None
            if spec is not None and spec.kind == "series" and spec.stream is None:
                raise RuleError(where, f"{spec.name}() has no chunked form yet ({f})",
                                expected="the in-memory backtest for a rule that reads it")


def _after(last: np.ndarray | None, a: np.ndarray) -> np.ndarray:
    """``a`` with the carried last row ``last`` on top (nothing on the run's first chunk)."""
    return a if last is None else np.concatenate([last[None, :], a])


def _drop(last: np.ndarray | None, a: np.ndarray) -> np.ndarray:
    return a if last is None else a[1:]


def _unowned(series: LazySeries) -> LazySeries:
    """What a series' own builders read it through: a weak reference. A builder closing over
    the series itself makes a cycle (series -> builder -> series) that reference counting never
    frees; the chunk's market and every panel built from it would then wait for the cyclic
    collector, which runs rarely (numpy arrays do not count towards its thresholds): a month
    of 1-minute bars for 200 products (~1.4 GiB) stayed alive month after month."""
    return weakref.proxy(series)


class _MarketSeries:
    """``market_series`` over consecutive chunks."""

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
            return lambda: _drop(last, ffill(_after(last, getattr(m, name))))

        def volume():
            listed = ~np.isnan(s["close"])
            return np.where(s["available"], m.volume, np.where(listed, 0.0, np.nan))

        def vol24():
            # the whole run's running sum continued (the same additions in the same order), minus
            # its value ``day`` rows earlier, from the carried tail when that is before the chunk
            last = None if self.csum is None else self.csum[-1]
            csum = _drop(last, cumsum_rows(_after(last, _zero_nan(s["volume_usd"]))))
            tail = self.csum if self.csum is not None else csum[:0]
            out = np.empty_like(csum)
            k = max(0, min(t, self.day - row0))  # rows before the first full day
            out[:k] = csum[:k]
            if k < t:
                ext = np.concatenate([tail, csum])
                off = tail.shape[0]
                np.subtract(csum[k:], ext[off + k - self.day:off + t - self.day], out=out[k:])
            np.copyto(out, np.nan, where=np.isnan(s["close"]))
            s.csum = np.concatenate([tail, csum])[-self.day:].copy()
            return out

        def bars_listed():
            rows = (~np.isnan(s["close"])).astype(np.float64)
            return _drop(self.listed, cumsum_rows(_after(self.listed, rows)))

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
        s = _unowned(series)
        return series

    def advance(self, s: LazySeries) -> None:
        """Carry the chunk's last rows (built now if no rule read them: the next chunk needs them)."""
        for name in FFILLED:
            self.last[name] = s[name][-1].copy()
        self.listed = s["bars_listed"][-1].copy()
        s["volume_usd_24h"]
        self.csum = s.csum


class _IndexSeries:
    """``index_series`` over consecutive chunks: the running product of the index returns
    continued, the previous chunk's last closes for the first row's return, a stream for
    breadth's 50-bar mean."""

    def __init__(self, m: MarketData, exclude_themes: tuple[str, ...]):
        self.include = np.array([i.theme not in exclude_themes for i in m.info])
        self.some = bool(self.include.any())
        self.prod: float | None = None  # the last value of cumprod(1 + r)
        self.prev: np.ndarray | None = None  # (N,) the last forward-filled closes
        self.streams: dict = {}
        self.built: set[str] = set()  # the series read so far: each is built on every later chunk

    def _included(self, a: np.ndarray) -> np.ndarray:
        return a[:, self.include] if self.some else a

    def series(self, m: MarketData, close: np.ndarray) -> LazySeries:
        t = close.shape[0]
        step = max(1, (1 << 21) // max(int(self.include.sum()) if self.some else len(self.include), 1))

        def level():
            self.built.add("close")
            r_mean = np.zeros(t)
            ext = _after(self.prev, close)
            first = 0 if self.prev is not None else 1  # the run's row 0 has no return
            shift = 1 if self.prev is not None else 0
            for a in range(first, t, step):
                b = min(a + step, t)
                r_mean[a:b] = index_mean_returns(self._included(ext[a + shift - 1:b + shift]))
            if self.prod is None:
                p = np.cumprod(1.0 + r_mean)
            else:  # the product continued: prod x (1 + r0) x ..., the whole run's multiplications
                p = np.cumprod(np.concatenate(([self.prod], 1.0 + r_mean)))[1:]
            s.prod = float(p[-1])
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


@dataclass
class _UniverseCarry:
    members: np.ndarray | None = None  # (N,) the members of the last rebuild
    deadline: int = 0  # epoch ms at which the TTL of the last rebuild runs out


class ChunkedPreparer:
    """``prepare`` fed consecutive row chunks of one market: ``step(row0, chunk)`` returns the
    chunk's :class:`Prepared` (chunk-local rows, ``extra["row0"] = row0``).

    ``first``: the run's first chunk (or any: its timeframe, symbols and product facts are the
    run's; every chunk must have the same)."""

    def __init__(self, rules: RuleSet, first: MarketData):
        check_chunkable(rules)
        check_regime_index(rules, first)
        self.rules = rules
        self.timeframe, self.symbols, self.info = first.timeframe, first.symbols, first.info
        self.theme_names = tuple(sorted({i.theme for i in first.info}))
        check_lock_themes(rules, self.theme_names)
        self.themes = np.array([self.theme_names.index(i.theme) for i in first.info], dtype=np.int64)
        self.size_increment = np.array([i.size_increment for i in first.info], dtype=np.float64)
        self._market = _MarketSeries(first.timeframe)
        self._index = _IndexSeries(first, rules.regime.exclude_themes)
        self._streams: dict = {}  # the market store's series calls
        self._index_streams: dict = {}  # the regime index store's (same keys, other series)
        self._universe = _UniverseCarry()
        self._regime: int | None = None  # the previous chunk's last regime code
        self.rows = 0  # rows prepared so far: the next chunk's row0
        self._last_time: int | None = None

    def _check(self, row0: int, m: MarketData) -> None:
        if row0 != self.rows:
            raise ValueError(f"chunks out of order: a chunk starts at row {row0}, expected {self.rows}")
        if m.timeframe != self.timeframe or m.symbols != self.symbols:
            raise ValueError("every chunk must have the first chunk's timeframe and symbols")
        if m.n_bars == 0:
            raise ValueError("a chunk has no rows")
        if self._last_time is not None and int(m.times[0]) <= self._last_time:
            raise ValueError(f"the chunk at row {row0} does not start after the previous chunk's last bar")

    def step(self, row0: int, m: MarketData) -> Prepared:
        self._check(row0, m)
        with reuse_freed_memory():
            p = self._prepare(row0, m)
        self.rows = row0 + m.n_bars
        self._last_time = int(m.times[-1])
        return p

    def _regimes(self, m: MarketData, close: np.ndarray, row0: int):
        rules = self.rules
        idx = self._index.series(m, close)
        t = m.n_bars
        store = ChunkStore(idx, (t, 1), self._index_streams, row0)
        found = regime_labels(rules, store, t)
        self._index.advance(idx, close)
        return found

    def _members(self, m: MarketData, store: ChunkStore, eligible: np.ndarray, regime_idx: np.ndarray):
        """``prepare._universe`` continued: the same rebuild rows (TTL on the clock, regime changes)."""
        u, c = self.rules.universe, self._universe
        t_n, n = eligible.shape
        key = None if u.rank_by is None else np.asarray(u.rank_by.series(store), dtype=np.float64)
        member = np.zeros((t_n, n), dtype=bool)
        rebuilds = np.zeros(t_n, dtype=bool)
        times = m.times
        changes = None
        if u.rebuild_on_regime_change:
            prev = np.concatenate(([regime_idx[0] if self._regime is None else self._regime], regime_idx[:-1]))
            changes = np.flatnonzero(regime_idx != prev)

        def next_after(r: int, deadline: int) -> int:
            nxt = max(r + 1, int(np.searchsorted(times, deadline, side="left")))
            if changes is not None:
                k = int(np.searchsorted(changes, r, side="right"))
                if k < changes.size:
                    nxt = min(nxt, int(changes[k]))
            return nxt

        # the first rebuild of the chunk: row 0 of the run, else where the carried TTL runs out
        # or the regime changes (-1: the last rebuild was before this chunk)
        r = 0 if c.members is None else next_after(-1, c.deadline)
        if c.members is not None:
            member[:r] = c.members
        while r < t_n:
            current = select_members(u, eligible[r], None if key is None else key[r])
            rebuilds[r] = True
            # a copy: select_members may return a row of ``eligible``, which would keep the
            # chunk's whole panel alive into the next chunk
            c.members, c.deadline = current.copy(), int(times[r]) + u.ttl_ms
            nxt = next_after(r, c.deadline)
            member[r:nxt] = current
            r = nxt
        self._regime = int(regime_idx[-1])
        return member, rebuilds

    def _prepare(self, row0: int, m: MarketData) -> Prepared:
        rules = self.rules
        base = self._market.series(m, row0)
        shape = (m.n_bars, m.n_symbols)
        labels, regime_idx, regime_masks = self._regimes(m, base["close"], row0)
        base["regime"] = np.broadcast_to(np.array(labels)[regime_idx][:, None], shape)
        store = ChunkStore(base, shape, self._streams, row0)

        filters = _group(rules.universe.filters, store, labels, regime_idx, "and", shape)
        eligible = filters.combined & ~np.isnan(base["close"])
        universe, rebuilds = self._members(m, store, eligible, regime_idx)

        s = rules.strategy
        groups: dict[str, RuleGroup] = {
            "entries": _group(s.entries, store, labels, regime_idx, "or", shape),
            "exits": _group(s.exits, store, labels, regime_idx, "or", shape),
            "vetoes": _group(rules.risk.vetoes, store, labels, regime_idx, "and", shape),
            "guards": _group(rules.execution.guards, store, labels, regime_idx, "and", shape),
        }
        halts = [(h, h.rule.when.bind(store)) for h in rules.risk.halts]
        size = s.size.bind(store)
        priority = s.priority.bind(store) if s.priority is not None else None
        for pr in s.protect.prices:  # the loop reads them each chunk: their streams go on now
            if pr.distance is not None:
                pr.distance.series(store)
        self._market.advance(base)
        return Prepared(
            market=m, rules=rules, store=store, available=base["available"], close=base["close"],
            regime_labels=labels, regime_idx=regime_idx, regime_masks=regime_masks,
            filter_masks={x.rule.id: x.mask for x in filters.series}, eligible=eligible,
            universe=universe, rebuilds=rebuilds, **groups, size=size, priority=priority, halts=halts,
            themes=self.themes, theme_names=self.theme_names, size_increment=self.size_increment,
            extra={"row0": row0},
        )

