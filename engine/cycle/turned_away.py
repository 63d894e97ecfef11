"""Entry candidates a full book turns away, over a block of bars.

With the position count full and nothing exiting, ``decide`` (engine/cycle/decide.py) turns
every entry candidate away: the ``position_count`` cap gives none a slot and the caps after it
only lower weights, so no order follows. Such a bar changes nothing but the trace, which keeps
its candidates and what each cap did to them. In a 1-minute backtest of 200 products whose
book is full, that is most bars, each a whole ``decide`` in Python.

The quiet-bar scan (engine/cycle/quiet.py) hands those bars here instead: the same events for
a block of bars at once, from the same steps as ``decide``: the candidates (not held, buyable,
an entry and every veto series holding), each bar's weights and priority order
(:func:`ordered_weights`) and the caps in file order (:func:`apply_caps`, the very function a
cycle calls, given one row per bar). Only runs whose entries, vetoes, size and priority are
series (nothing read from the portfolio), with no scoped locks and no book, take this path: a
per-cycle rule would leave a verdict per bar and a lock its own events.
"""
from __future__ import annotations

import numpy as np

from engine.cycle.block_events import BlockEvents
from engine.cycle.decide import apply_caps, ordered_weights
from engine.cycle.plan import CyclePlan
from engine.rules.expr import CYCLE
from engine.trace import CANDIDATE, CAP_BLOCK, CAP_PASS, CLIP


def applies(plan: CyclePlan) -> bool:
    """Whether a run's full-book bars can be decided as a block (see the module doc)."""
    p = plan.p
    s = p.rules.strategy
    series = s.size.level < CYCLE and (s.priority is None or s.priority.level < CYCLE)
    counts = [c for c in plan.caps if c.type == "position_count"]
    return bool(counts and plan.records and series and not p.entries.cycle and not p.vetoes.cycle
                and not plan.locks and p.book is None)


def full_slots(plan: CyclePlan) -> int:
    """The fewest positions the position_count caps allow: with that many kept, no entry has a slot."""
    return max(min(int(c.limit) for c in plan.caps if c.type == "position_count"), 0)


def turned_away(plan: CyclePlan, qty: np.ndarray, keep: np.ndarray, a: int, cand: np.ndarray, close: np.ndarray,
                equity: np.ndarray) -> BlockEvents:
    """The events of bars ``a + i`` for the rows ``i`` of ``cand`` ((m, N) entry candidates; a row
    with none is a quiet bar), with the positions ``qty`` held throughout, ``keep`` those not
    exiting; ``close`` and ``equity``: those bars' (m, N) closes and (m,) marked equity."""
    p = plan.p
    n = cand.shape[1]
    rows = np.flatnonzero(np.logical_or.reduce(cand, axis=1))
    window = slice(a, a + cand.shape[0])
    # a series expression reads its precomputed rows (a window of them), a constant is one value
    size = np.asarray(p.size(None, window), dtype=np.float64)
    prio = None if p.priority is None else np.asarray(p.priority(None, window), dtype=np.float64)
    r = rows.size
    k = int(np.count_nonzero(cand[rows], axis=1).max()) if r else 0
    idx = np.zeros((r, k), dtype=np.int64)
    w = np.zeros((r, k))
    valid = np.zeros((r, k), dtype=bool)
    for i, row in enumerate(rows.tolist()):  # each bar's order, as its cycle orders it
        got, wk = ordered_weights(size[row] if size.ndim == 2 else size,
                                  None if prio is None else prio[row] if prio.ndim == 2 else prio,
                                  n, cand[row].nonzero()[0])
        idx[i, :got.size], w[i, :got.size], valid[i, :got.size] = got, wk, True
    marks: tuple[dict, dict, dict] = ({}, {}, {})
    eq = equity[rows]
    apply_caps(plan, qty, keep, close[rows], np.where(eq > 0, eq, 0.0), idx, w, valid, marks)
    order = [c.id for c in plan.caps]
    masks = [(CANDIDATE, cand[rows])]
    for prefix, d in zip((CLIP, CAP_BLOCK, CAP_PASS), marks):
        masks += [(prefix + cid, d[cid]) for cid in order if cid in d]
    return BlockEvents.of(masks, a, rows, r)
