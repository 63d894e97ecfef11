"""Exits under way whose sells the guards keep holding back, over a block of bars.

An exit, once decided, is retried every bar until the position is flat (docs/backtest.md). When
an execution guard stops its sell, say what a volume-capped partial fill left is worth less
than ``min_notional``, the retry changes nothing but the trace, bar after bar: each per-cycle
guard's verdict and what each guard blocked. In a 1-minute backtest of 200 products that is
most bars, each a whole ``decide`` in Python.

The quiet-bar scan (engine/cycle/quiet.py) hands such bars here: the retried sells (every
position under way out, whole, as ``decide`` sends them) go through the guards for a block of
bars at once, by the function a cycle calls (``apply_guards``, given the block's env and
per-bar arrays). The first bar where some sell would pass is busy (``decide`` sends it); the
bars before it are decided here, their events those each cycle would have recorded.
"""
from __future__ import annotations

import numpy as np

from engine.cycle.block_events import BlockEvents
from engine.cycle.decide import Quotes, apply_guards
from engine.cycle.prepare import Prepared
from engine.trace import BLOCK, CYCLE_TRUE


def held_back(p: Prepared, qty: np.ndarray, exiting: np.ndarray, a: int, env, close: np.ndarray,
              exit_verdicts: list[tuple[str, np.ndarray]]) -> tuple[int, BlockEvents, BlockEvents]:
    """(rows decided, their per-cycle verdicts, their guards' blocks) for the bars ``a + i`` of the
    rows ``i`` of ``close`` ((m, N)), the positions ``exiting`` (held, on their way out) retried
    whole each bar; ``env``: the block's portfolio values (``portfolio_env`` of those bars);
    ``exit_verdicts``: the per-cycle exits' verdicts over those bars (id, (m', N), m' >= the rows
    decided), which hold for no position still kept. The rows decided end before the first bar
    where a retried sell would pass every guard."""
    m, n = close.shape
    window = slice(a, a + m)
    arrays = p.store.arrays
    order_qty = np.where(exiting, qty, 0.0)  # decide: no buy (0.0) plus the exits' sells
    quotes = Quotes(close, arrays["spread_bps"][window], np.zeros(n), arrays["volume_usd"][window])
    verdicts: dict[str, np.ndarray] = {}
    blocked: dict[str, np.ndarray] = {}
    ok = apply_guards(p, env, window, order_qty, np.zeros(n, dtype=bool), close, quotes, verdicts, blocked)
    goes = np.logical_or.reduce(ok & exiting, axis=1)
    e = int(goes.argmax()) if np.count_nonzero(goes) else m
    rows = np.arange(e)
    shape = (m, n)
    # a cycle evaluates the exits first, then the guards (``decide``: its verdicts in that order)
    cycle = BlockEvents.of([(CYCLE_TRUE + rid, v[:e]) for rid, v in exit_verdicts]
                           + [(CYCLE_TRUE + rid, np.broadcast_to(v, shape)[:e]) for rid, v in verdicts.items()],
                           a, rows, e)
    stops = BlockEvents.of([(BLOCK + gid, np.broadcast_to(b, shape)[:e]) for gid, b in blocked.items()], a, rows, e)
    return e, cycle, stops
