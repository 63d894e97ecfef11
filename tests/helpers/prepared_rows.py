"""Rows ``a .. b`` of a whole-market Prepared, as the per-chunk Prepared a chunked backtest hands
the trace and the run summary (only the arrays they read: its bound per-cycle rules still
index the whole run, so it is not a chunk to run the loop on)."""
from __future__ import annotations

import dataclasses

from engine.cycle.prepare import Prepared, RuleGroup, SeriesRule


def _group(g: RuleGroup, a: int, b: int) -> RuleGroup:
    return RuleGroup([SeriesRule(s.rule, s.mask[a:b]) for s in g.series], g.cycle, g.combined[a:b])


def prepared_rows(p: Prepared, a: int, b: int) -> Prepared:
    return dataclasses.replace(
        p, market=p.market.select(start=a, stop=b), available=p.available[a:b], close=p.close[a:b],
        regime_idx=p.regime_idx[a:b], regime_masks={k: m[a:b] for k, m in p.regime_masks.items()},
        filter_masks={k: m[a:b] for k, m in p.filter_masks.items()}, eligible=p.eligible[a:b],
        universe=p.universe[a:b], rebuilds=p.rebuilds[a:b], entries=_group(p.entries, a, b),
        exits=_group(p.exits, a, b), vetoes=_group(p.vetoes, a, b), guards=_group(p.guards, a, b),
        extra={**p.extra, "row0": a})


def row_chunks(p: Prepared, sizes: tuple[int, ...]) -> list[Prepared]:
    out, a = [], 0
    for size in sizes:
        out.append(prepared_rows(p, a, min(a + size, p.market.n_bars)))
        a += size
    assert a >= p.market.n_bars
    return out
