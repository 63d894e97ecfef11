"""The backtest over a market read in row chunks: no feature is ever held for the whole run.

:func:`run_market_chunks` prepares each chunk (engine/cycle/chunks.py), runs the loop over it
(:func:`run_chunks_of`, the one loop every backtest runs) and keeps of it only what the results
and the trace read: the market rows, the regime, the universe and the rules' boolean masks
(:class:`_Record`). Its results are the in-memory run's, byte for byte
(tests/test_chunked_prepare.py).

Not yet: the record is still (time x symbol) booleans plus the raw market rows for the whole run
(results and trace are written from it at the end, not chunk by chunk).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from engine.backtest.engine import BacktestResult, BacktestSettings, run_chunks_of
from engine.cycle.chunks import ChunkedPreparer
from engine.cycle.prepare import CycleRule, Prepared, RuleGroup, SeriesRule
from engine.market.data import PRICE_COLUMNS, MarketData
from engine.rules.expr import FeatureStore
from engine.rules.loader import RuleSet

GROUPS = ("entries", "exits", "vetoes", "guards")
_COLUMNS = (*PRICE_COLUMNS, "volume", "spread_bps")


def _not_kept(env, t):
    raise RuntimeError("a chunked run's record keeps no per-cycle rule (they were bound per chunk)")


class _Record:
    """What the results and the trace read of each chunk, joined into one Prepared at the end.
    Per-cycle closures are not kept: they hold their chunk's feature arrays."""

    def __init__(self):
        self.parts: list[dict] = []

    def add(self, p: Prepared) -> None:
        self.parts.append({
            "market": p.market, "available": p.available, "close": p.close, "regime_idx": p.regime_idx,
            "regime_masks": p.regime_masks, "filter_masks": p.filter_masks, "eligible": p.eligible,
            "universe": p.universe, "rebuilds": p.rebuilds,
            **{g: ([s.mask for s in getattr(p, g).series], [c.regime_ok for c in getattr(p, g).cycle],
                   getattr(p, g).combined) for g in GROUPS},
        })
        self._last = p  # the rules and static facts (every chunk has the same)

    def prepared(self) -> Prepared:
        parts, last = self.parts, self._last
        cat = lambda get: np.concatenate([get(x) for x in parts])  # noqa: E731
        first = parts[0]["market"]
        optional = lambda get: None if get(parts[0]) is None else cat(get)  # noqa: E731
        market = MarketData(
            timeframe=first.timeframe, times=cat(lambda x: x["market"].times), symbols=first.symbols,
            **{c: cat(lambda x, c=c: getattr(x["market"], c)) for c in _COLUMNS}, info=first.info,
            source=first.source, true_regime=optional(lambda x: x["market"].true_regime),
            true_regime_labels=first.true_regime_labels)

        def group(g: str) -> RuleGroup:
            src = getattr(last, g)
            series = [SeriesRule(s.rule, cat(lambda x, i=i: x[g][0][i])) for i, s in enumerate(src.series)]
            cycle = [CycleRule(c.rule, _not_kept, optional(lambda x, i=i: x[g][1][i])) for i, c in enumerate(src.cycle)]
            return RuleGroup(series, cycle, cat(lambda x: x[g][2]))

        rows = {k: cat(lambda x, k=k: x[k]) for k in ("available", "close", "regime_idx", "eligible", "universe",
                                                       "rebuilds")}
        masks = {f: {k: cat(lambda x, f=f, k=k: x[f][k]) for k in parts[0][f]} for f in ("regime_masks", "filter_masks")}
        return Prepared(
            market=market, rules=last.rules, store=FeatureStore({}, (market.n_bars, market.n_symbols)),
            regime_labels=last.regime_labels, **rows, **masks, **{g: group(g) for g in GROUPS},
            size=_not_kept, priority=None, halts=[(h, _not_kept) for h, _ in last.halts],
            themes=last.themes, theme_names=last.theme_names, size_increment=last.size_increment,
        )


def run_market_chunks(market_chunks: Iterable[tuple[int, MarketData]], rules: RuleSet, s: BacktestSettings,
                      n_bars: int, progress=None, fast: bool = True, observe=None,
                      trace: bool = True) -> BacktestResult:
    """The backtest of ``rules`` over a market of ``n_bars`` rows given as consecutive
    ``(row0, chunk)`` pieces (same symbols, time order): ``run_backtest(prepare(market, rules), s)``
    without the whole run's features. Chunks past the window are still prepared: the trace holds
    the whole market's masks, as the in-memory run's does."""
    record = _Record()
    source = iter(market_chunks)

    def chunks() -> Iterator[Prepared]:
        prep = None
        for row0, m in source:
            prep = prep or ChunkedPreparer(rules, m)
            p = prep.step(row0, m)
            record.add(p)
            yield p
        state["prep"] = prep

    state: dict = {}
    gen = chunks()

    def facts() -> Prepared:
        for _ in gen:  # the rest of the market, into the record
            pass
        if state["prep"].rows != n_bars:
            raise ValueError(f"the chunks hold {state['prep'].rows} rows, expected {n_bars}")
        return record.prepared()

    return run_chunks_of(gen, s, n_bars, facts, progress=progress, fast=fast, observe=observe, trace=trace)
