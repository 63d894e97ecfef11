"""Prepare a run chunk by chunk: memory that follows the chunk's length, not the run's.

:class:`ChunkedPreparer` is fed consecutive row chunks of one market (same symbols, time order)
and returns for each a :class:`Prepared` of those rows (chunk-local rows, ``extra["row0"]``)
equal, array for array and bit for bit, to the same rows of the whole-array ``prepare``. What a
row needs from earlier rows is carried over the border: the forward-fill's last values, the
24h volume sum's last day of running sums, the listing counts, the regime index's running
product, one stream per series-function call (engine/rules/expr.py ``ChunkStore``), the last
regime, and the universe's members and next rebuild deadline. The carriers are the whole-array
path's own code (engine/cycle/features.py ``MarketSeries``, ``IndexSeries``; engine/cycle/prepare.py
``universe_members``): a whole run is their one-chunk case.

Coarser bars (``on("1d", ...)``, a regime file's ``timeframe:``) are built chunk by chunk too
(engine/cycle/coarse_chunks.py), and a book's strategies each chunk on the same store.
"""
from __future__ import annotations

import numpy as np

from engine.cycle.coarse_chunks import CoarseChunks
from engine.cycle.features import IndexSeries, MarketSeries
from engine.cycle.memory import reuse_freed_memory
from engine.cycle.prepare import (Prepared, RuleGroup, UniverseCarry, _group, check_regime_index, prepare_book, rank_key,
                                  regime_labels, universe_members)
from engine.market.data import MarketData
from engine.rules.errors import RuleError, Where
from engine.rules.expr import ChunkStore
from engine.rules.functions import FUNCTIONS
from engine.rules.loader import RuleSet, check_lock_themes

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
    for where, expr in _expressions(rules):
        for f in expr.features:
            spec = FUNCTIONS.get(f.split("(", 1)[0]) if "(" in f else None
            if spec is not None and spec.kind == "series" and spec.stream is None:
                raise RuleError(where, f"{spec.name}() has no chunked form yet ({f})",
                                expected="the in-memory backtest for a rule that reads it")


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
        self._market = MarketSeries(first.timeframe)
        self._index = IndexSeries(first, rules.regime.exclude_themes, streams={})
        self._streams: dict = {}  # the market store's series calls
        self._index_streams: dict = {}  # the regime index store's (same keys, other series)
        self._universe = UniverseCarry()
        self._exclude = rules.regime.exclude_themes
        self._frames: dict[str, CoarseChunks] = {}  # the coarser bars the rules read, by timeframe
        self._carried: dict = {}  # the market store's on() reads: each one's last closed coarse row
        self._index_carried: dict = {}  # the regime index store's
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

    def _frame(self, timeframe: str, row0: int, m: MarketData) -> CoarseChunks:
        f = self._frames.get(timeframe)
        if f is None:  # first read: in the run's first chunk (every chunk evaluates every rule)
            f = self._frames[timeframe] = CoarseChunks(timeframe, m, self._exclude)  # ValueError: not coarser
            f.begin(row0, m)
        return f

    def _regimes(self, m: MarketData, close: np.ndarray, row0: int):
        rules = self.rules
        idx = self._index.series(m, close)
        t = m.n_bars
        store = ChunkStore(idx, (t, 1), self._index_streams, row0,
                           coarser=lambda tf: self._frame(tf, row0, m).index_store(), carried=self._index_carried)
        found = regime_labels(rules, store, t)
        self._index.advance(idx, close)
        return found

    def _prepare(self, row0: int, m: MarketData) -> Prepared:
        rules = self.rules
        for f in self._frames.values():
            f.begin(row0, m)
        base = self._market.series(m, row0)
        shape = (m.n_bars, m.n_symbols)
        labels, regime_idx, regime_masks = self._regimes(m, base["close"], row0)
        base["regime"] = np.broadcast_to(np.array(labels)[regime_idx][:, None], shape)
        store = ChunkStore(base, shape, self._streams, row0,
                           coarser=lambda tf: self._frame(tf, row0, m).market_store(), carried=self._carried)

        filters = _group(rules.universe.filters, store, labels, regime_idx, "and", shape)
        eligible = filters.combined & ~np.isnan(base["close"])
        u = rules.universe
        universe, rebuilds = universe_members(u, m.times, rank_key(u, store), eligible, regime_idx, self._universe)

        s = rules.strategy
        groups: dict[str, RuleGroup] = {
            "entries": _group(s.entries, store, labels, regime_idx, "or", shape),
            "exits": _group(s.exits, store, labels, regime_idx, "or", shape),
            "vetoes": _group(rules.risk.vetoes, store, labels, regime_idx, "and", shape),
            "guards": _group(rules.execution.guards, store, labels, regime_idx, "and", shape),
        }
        halts = [(h, h.rule.when.bind(store)) for h in rules.risk.halts]
        book = prepare_book(rules, store, labels, regime_idx, shape) if rules.book is not None else None
        size = s.size.bind(store)
        priority = s.priority.bind(store) if s.priority is not None else None
        for pr in s.protect.prices:  # the loop reads them each chunk: their streams go on now
            if pr.distance is not None:
                pr.distance.series(store)
        self._market.advance(base, m)
        for f in self._frames.values():
            f.finish()
        return Prepared(
            market=m, rules=rules, store=store, available=base["available"], close=base["close"],
            regime_labels=labels, regime_idx=regime_idx, regime_masks=regime_masks,
            filter_masks={x.rule.id: x.mask for x in filters.series}, eligible=eligible,
            universe=universe, rebuilds=rebuilds, **groups, size=size, priority=priority, halts=halts,
            themes=self.themes, theme_names=self.theme_names, size_increment=self.size_increment,
            book=book, extra={"row0": row0},
        )

