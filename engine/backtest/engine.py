"""The backtest loop: the cycle on a simulated clock, one bar at a time.

Per bar t: fill the orders decided at t-1 at this bar's open, mark the portfolio at the
close, then decide (the same ``decide`` every mode runs).

The fast path (the default) hands stretches of quiet bars, where ``decide`` provably does
nothing, to :class:`QuietScanner` (engine/cycle/quiet.py, built from the same plan as
``decide``), which marks them with whole-array operations; busy bars run exactly as above.
Neither writes into the loop's state: each returns what changed and the loop applies it. ``fast=False`` runs every bar through ``decide`` (the reference the
tests compare the fast path with: results must be identical).

Chunks: :func:`run_chunks` runs the same loop over a sequence of chunk Prepareds (consecutive
market rows [a, b), chunk-local indices, ``extra["row0"] = a``); the in-memory run is one chunk.
Everything the loop carries (portfolio, broker and its rng, protections, halts and locks, the
pending decision) crosses a border; the bar numbers it holds are rebased by the chunk's length
(:func:`_rebase`), fills and the trace are recorded at global bars.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from engine.cycle.decide import Decision, Quotes, decide
from engine.cycle.plan import HaltState, cycle_plan
from engine.cycle.portfolio import Portfolio
from engine.cycle.prepare import Prepared
from engine.cycle.quiet import QuietScanner
from engine.cycle.locks import after_fills
from engine.cycle.state import apply_change, apply_marks
from engine.sim.fills import SimBroker
from engine.sim.protect import Protector
from engine.sim.result import RunResult
from engine.sim.settings import SimSettings
from engine.sim.summary import RunSummary
from engine.trace import NoTrace, TraceRecorder

DAY_MS = 86_400_000


# the backtest runs on the shared simulated-account types (engine/sim); the names stay
# for the callers that read them as the backtest's
BacktestSettings = SimSettings
BacktestResult = RunResult


# Quiet-bar scan blocks grow while bars stay quiet (cheap long skips) and shrink back after
# a busy bar. The scan computes portfolio values only up to the first bar its series signals
# find busy (engine/cycle/quiet.py), so a long block costs little more than a short one and
# saves the scans that end at a short block's end (about a tenth of a grid point's scans).
MIN_BLOCK, MAX_BLOCK = 256, 2048


def run_backtest(p: Prepared, s: BacktestSettings, progress=None, fast: bool = True, observe=None,
                 trace: bool = True, checkpoint=None) -> BacktestResult:
    """``observe(d)``: called with every decision ``decide`` returned (quiet bars skipped by the
    fast path decide nothing): the parity harness reads the orders a run decided from it.
    ``trace=False``: record no decisions trace (``res.trace`` is a NoTrace; a grid point's
    metrics do not read it, and recording it costs several per cent of a run).
    ``checkpoint(k, equity, exposure)``: called once the window's first ``k`` equity rows are
    final, for each ``k`` it asks for (``checkpoint.next_bar``); it may stop the run by raising
    (an Optuna pruner: engine/sweep/pruning.py)."""
    return run_chunks([p], s, p, progress=progress, fast=fast, observe=observe, trace=trace, checkpoint=checkpoint)


def _rebase(halts: HaltState, pf: Portfolio, shift: int) -> HaltState:
    """The bar numbers the loop carries, moved ``shift`` bars earlier (the next chunk's row 0 is
    this chunk's row ``shift``): halt cooldowns, scoped locks and their closed trades, entry bars."""
    pf.entry_bar -= shift
    ls = halts.locks
    if ls is not None:
        ls = dataclasses.replace(ls, until=ls.until - shift,
                                 exits=tuple((b - shift, i, st, r) for b, i, st, r in ls.exits))
    return HaltState({k: v - shift for k, v in halts.until.items()}, ls)


@dataclass
class _Carry:
    """What the loop carries from bar to bar and over chunk borders."""

    pf: Portfolio
    broker: SimBroker
    protector: Protector
    trace: TraceRecorder | NoTrace
    equity: np.ndarray  # (bars of the window,)
    exposure: np.ndarray
    halts: HaltState = field(default_factory=HaltState)
    pending: Decision | None = None
    block: int = MIN_BLOCK  # the quiet-bar scan's current block length
    decided: int = 0
    skipped: int = 0
    as_block: int = 0  # of the decided bars, those a full book turned away in a block (engine/cycle/turned_away.py)

    def leave_chunk(self) -> None:
        """Let go of the chunk just run (the next is bound before its first bar): what crosses
        the border is the state above, not the chunk's market or features."""
        self.broker.market = None
        self.protector.leave()

    @classmethod
    def first(cls, p: Prepared, s: BacktestSettings, bars: int, trace) -> "_Carry":
        """The run's start, from its first chunk ``p``."""
        m = p.market
        broker = SimBroker(m, s.fee_schedule(), s.slippage,
                           p.size_increment, s.max_participation, np.random.default_rng(s.seed))
        protector = Protector(p.rules.strategy.protect, m, p.store)
        if protector.active:
            broker.on_entry = protector.on_entry
        return cls(Portfolio.empty(m.n_symbols, s.initial_cash), broker, protector, trace,
                   np.empty(bars), np.empty(bars))


def run_chunks(chunks: Iterable[Prepared], s: BacktestSettings, whole: Prepared, progress=None,
               fast: bool = True, observe=None, trace: bool = True, checkpoint=None) -> BacktestResult:
    """The backtest over ``chunks`` (consecutive row ranges of the market, each a Prepared with
    chunk-local rows and ``extra["row0"]``), bars ``s.start`` .. ``s.stop`` of the whole market.
    ``whole``: the run's facts for the results and the trace (its market's times and symbols,
    its rules, its whole-run masks: the results read them from it when they are built)."""
    return run_chunks_of(chunks, s, whole.market.n_bars, lambda: whole, progress, fast, observe, trace, checkpoint,
                         gather=False)


def run_chunks_of(chunks: Iterable[Prepared], s: BacktestSettings, n_bars: int, facts: Callable[[], Prepared],
                  progress=None, fast: bool = True, observe=None, trace: bool = True,
                  checkpoint=None, gather: bool = True) -> BacktestResult:
    """:func:`run_chunks` over a market of ``n_bars`` rows whose facts for the results and the
    trace (``facts()``, called once the loop is done) are gathered while the chunks are read
    (engine/backtest/chunked.py). ``gather``: what results.json reads of the prepared rows too
    (a :class:`RunSummary`); without it the results read it from ``facts()`` if they are built
    (a grid point's metrics never are)."""
    start = s.start
    stop = n_bars if s.stop is None else min(s.stop, n_bars)
    if stop - start < 2:
        raise ValueError(f"the backtest window has {stop - start} bars; at least 2 are needed")
    recorder = TraceRecorder(None, start, stop, chunked=True) if trace else NoTrace()  # its facts: set below
    summary = RunSummary(start, stop, s.initial_cash) if gather else None
    c = None
    rebased = 0  # global row of the carried state's bar 0
    done = False  # past the window: a chunk only adds its masks to the trace (it saves the whole market's)
    for p in chunks:
        row0 = int(p.extra.get("row0", 0))
        rows = p.market.n_bars
        if done:
            recorder.add_chunk(p, row0)
        else:
            if c is None:
                c, rebased = _Carry.first(p, s, stop - start, recorder), row0
            elif row0 != rebased:
                raise ValueError(f"chunks out of order: a chunk starts at row {row0}, expected {rebased}")
            else:
                c.broker.market = p.market
                c.protector.rebind(p.market, p.store)
            first_fill = len(c.broker.fills)
            recorder.row0 = row0
            recorder.add_chunk(p, row0)
            if summary is not None:
                summary.add(p, row0)
            lo, hi = max(start - row0, 0), min(stop - row0, rows)
            if lo < hi:
                _loop(p, s, c, row0 - start, lo, hi, row0 + hi == stop, progress, stop - start, fast, observe,
                      checkpoint)
            for f in c.broker.fills[first_fill:]:
                f.t += row0
            if summary is not None:
                summary.add_fills(p, row0, c.broker.fills[first_fill:])
            if row0 + rows >= stop:
                done = True
            else:
                c.halts = _rebase(c.halts, c.pf, rows)
                rebased = row0 + rows
            c.leave_chunk()
        # nothing of this chunk is held while the next one is read and prepared (a chunked run
        # would otherwise hold two chunks' markets and features at its peak)
        del p
    if c is None:
        raise ValueError("the backtest was given no chunk of market rows")
    whole = facts()
    if trace:
        recorder.p = whole
    return BacktestResult(whole, start, stop, c.equity, c.exposure, c.broker.fills, c.pf, recorder, s,
                          {"bars": stop - start, "decided": c.decided, "skipped": c.skipped,
                           "decided_as_block": c.as_block,
                           "participation": c.broker.cuts.as_dict(s.max_participation)}, summary)


def _loop(p: Prepared, s: BacktestSettings, carry: _Carry, k0: int, start: int, stop: int, last: bool,
          progress, total: int, fast: bool, observe, checkpoint=None) -> None:
    """Bars ``start`` .. ``stop`` (chunk-local) of one chunk, advancing ``carry``; ``last``: the run's
    last bar is ``stop - 1`` (close_at_end, no decision after it). Equity row of local bar t:
    ``t + k0``; ``total``: the window's bars (for the progress line)."""
    # the carried state in locals for the per-bar code, written back at the end
    pf, broker, protector, trace = carry.pf, carry.broker, carry.protector, carry.trace
    equity, exposure, halts, pending, block = carry.equity, carry.exposure, carry.halts, carry.pending, carry.block
    m = p.market
    # untraced and unobserved (a grid point): nobody reads the decisions' trace-only bookkeeping
    # (CyclePlan.records) and bars where no order can follow are quiet even if their decision
    # would leave a trace (QuietScanner.slots)
    traced = observe is not None or not isinstance(trace, NoTrace)
    plan = cycle_plan(p)
    if not traced:
        plan = dataclasses.replace(plan, records=False)
    close = p.close
    spread = p.store.arrays["spread_bps"]
    vol_usd = p.store.arrays["volume_usd"]
    zeros = np.zeros(m.n_symbols)
    scanner = QuietScanner.build(plan, traced=traced, observed=observe is not None) if fast else None
    decided = skipped = as_block = 0
    busy_at = -1  # a bar the scanner already found busy
    # when scans keep finding the very next bar busy (a strategy whose signals hold for
    # long stretches), scanning is wasted work: back off for a growing number of bars
    backoff, scan_from = 0, start
    # the last bar a scan may cover: the run's last bar is never quiet (nothing after it fills)
    scan_stop = stop - 1 if last else stop
    t = start
    next_report = start  # progress every ~512 bars, however far the fast path jumps
    next_check = checkpoint.next_bar - k0 if checkpoint is not None else stop + 1
    while t < stop:
        if progress is not None and t >= next_report:
            progress(t + k0, total)
            next_report = t + 512
        if t >= next_check:  # equity rows before t are final (a jump over quiet bars filled them)
            checkpoint(t + k0, equity, exposure)
            next_check = checkpoint.next_bar - k0
        seen = len(broker.fills)
        if pending is not None:
            # fill first: the bar after a fill is as likely to be quiet as any other, and the
            # scanner starts from the portfolio as it stands after this bar's fills
            broker.execute(pending, t, pf)
            pending = None
        # protections fill inside the bar, after its open's fills (docs/backtest.md items 9-13)
        protector.step(broker, t, pf)
        if plan.locks and len(broker.fills) > seen:  # trades closed: the risk file's scoped locks
            halts = after_fills(plan.locks, p.themes, halts, broker.fills[seen:], pf.qty, t)
        if (scanner is not None and t < scan_stop and t != busy_at and t >= scan_from):
            end = min(t + block, scan_stop)
            # a bar where a protection may fire is not quiet: the scan stops before it
            end = protector.horizon(pf, t + 1, end)
            span = scanner.scan(pf, halts, t, end)
            nxt = span.end
            if nxt > t:
                equity[t + k0:nxt + k0] = span.equity
                exposure[t + k0:nxt + k0] = span.exposure
                for hid, bars in span.halt_bars:
                    trace.record_halts(hid, bars)
                if span.events.bars:
                    trace.record_block(span.events)
                apply_marks(pf, span.marks)
            decided += span.events.bars
            as_block += span.events.bars
            skipped += nxt - t - span.events.bars
            if nxt < end:
                busy_at, block = nxt, MIN_BLOCK
            else:
                block = min(block * 2, MAX_BLOCK)
            if nxt == t:
                backoff = min(max(1, backoff * 2), 64)
                scan_from = t + backoff
            else:
                backoff = 0
            if nxt > t:
                protector.advance(pf, t + 1, nxt)  # the quiet bars' highs, into the trailing stops
                t = nxt
                continue
        c = close[t]
        if last and t == stop - 1 and s.close_at_end:
            broker.close_out(t, pf)
        eq = pf.mark(c, int(m.times[t] // DAY_MS))
        k = t + k0
        equity[k] = eq
        exposure[k] = (eq - pf.cash) / eq if eq > 0 else 0.0
        if last and t == stop - 1:
            break  # nothing after the last bar to fill at
        d, change = decide(plan, t, pf, Quotes(c, spread[t], zeros, vol_usd[t]), halts)
        halts = apply_change(pf, change)
        decided += 1
        trace.record(d)
        if observe is not None:
            observe(d)
        if d.has_orders:
            pending = d
        t += 1
    carry.halts, carry.pending, carry.block = halts, pending, block
    carry.decided += decided
    carry.as_block += as_block
    carry.skipped += skipped
