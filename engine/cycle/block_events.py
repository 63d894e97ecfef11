"""The trace events of bars decided as a block (engine/cycle/turned_away.py, held_back.py).

A block's events are kept as a cycle's would be, key by key: per event key the bars that have
it, each bar's symbol count and the symbol indices bar by bar (what ``EventLog.add_block`` in
engine/trace.py takes). Keys come in the order one decision lists them (``decision_events``),
so that a key seen for the first time joins the trace file where the per-bar loop would put it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class BlockEvents:
    keys: tuple[str, ...]
    t: tuple[np.ndarray, ...]  # (bars,) int32 per key
    n: tuple[np.ndarray, ...]  # (bars,) int32 per key
    idx: tuple[np.ndarray, ...]  # (sum of n,) int32 per key
    bars: int  # the bars decided

    @classmethod
    def of(cls, masks: list[tuple[str, np.ndarray]], a: int, rows: np.ndarray, bars: int) -> "BlockEvents":
        """From (key, (r, N) mask) pairs in decision order: mask row i is bar ``a + rows[i]``; a
        bar where a key's mask is empty has no record of it (as a cycle's ``decision_events``)."""
        keys, ts, ns, ids = [], [], [], []
        for key, m in masks:
            counts = np.count_nonzero(m, axis=1)
            on = counts > 0
            keys.append(key)
            ts.append((rows[on] + a).astype(np.int32))
            ns.append(counts[on].astype(np.int32))
            ids.append(m.nonzero()[1].astype(np.int32))  # row by row, symbols ascending
        return cls(tuple(keys), tuple(ts), tuple(ns), tuple(ids), bars)

    def __add__(self, other: "BlockEvents") -> "BlockEvents":
        """The events of the same bars, ``other``'s keys after these (each key in one part only)."""
        return BlockEvents(self.keys + other.keys, self.t + other.t, self.n + other.n, self.idx + other.idx,
                           max(self.bars, other.bars))


NO_EVENTS = BlockEvents((), (), (), (), 0)
