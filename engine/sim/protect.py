"""Protections filled inside the bar: a strategy's ``protect:`` block (stop loss, take profit,
trailing stop, time stop), shared by the backtest and paper (one fill model: engine/sim).

The written rules are items 9-13 of the fill model in docs/backtest.md:

- levels are fixed at entry, from the entry's fill price (a fraction) or from a market
  expression read at the entry's decision bar (a price distance); a NaN or non-positive
  distance leaves that protection off for the position;
- in a bar, a position held before its open is checked at the open first: an open at or
  through the stop (stop loss or trailing, whichever is higher) fills at the open; an open at
  or above the take-profit fills at the open; a position held ``time_stop`` bars is sold at
  the open;
- then inside the bar: a low at or below the stop fills at the stop; else a high *through*
  the take-profit (above it: touching is not enough, as for a resting limit) fills at the
  take-profit. A bar that reaches both fills the stop (we cannot know which came first);
- the trailing stop's highest high takes in a bar's high only after that bar: the level a
  bar is checked against never moves within it;
- every protection fill is a market sell from its level: slippage and the taker fee as any
  fill, capped by the bar's volume participation (the rest is sold at the next bars' opens as
  an exit under way); a missing bar or one without volume fills nothing.

Everything is whole-array over the held symbols: no per-symbol Python per bar.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.cycle.portfolio import Portfolio
from engine.market.data import MarketData
from engine.rules.loader import ProtectRules, Protection

_NAN = np.nan


def _distance(pr: Protection | None, store) -> np.ndarray | None:
    if pr is None or pr.distance is None:
        return None
    return np.asarray(pr.distance.series(store), dtype=np.float64)


@dataclass
class Levels:
    """Each symbol's protection levels while it is held (NaN: none)."""

    stop: np.ndarray  # (N,) the stop-loss price
    take: np.ndarray  # (N,) the take-profit price
    trail_frac: np.ndarray  # (N,) the trailing stop as a fraction below the highest high
    trail_dist: np.ndarray  # (N,) ... or as a price distance below it
    high: np.ndarray  # (N,) highest high of the bars completed since entry (the entry price at first)

    @classmethod
    def empty(cls, n: int) -> "Levels":
        return cls(*(np.full(n, _NAN) for _ in range(5)))

    def clear(self, idx: np.ndarray) -> None:
        for a in (self.stop, self.take, self.trail_frac, self.trail_dist, self.high):
            a[idx] = _NAN

    def trail(self, idx: np.ndarray, high: np.ndarray | None = None) -> np.ndarray:
        """The trailing level of ``idx`` at the highest high ``high`` (default: the stored one)."""
        h = self.high[idx] if high is None else high
        # h - h x f, not h x (1 - f): 1 - f rounds (0.9 for 0.1), h x f often does not
        return np.fmax(h - h * self.trail_frac[idx], h - self.trail_dist[idx])

    def stop_level(self, idx: np.ndarray, high: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(the binding stop level, True where the trailing stop is it)."""
        tr = self.trail(idx, high)
        st = self.stop[idx]
        return np.fmax(st, tr), tr > np.where(np.isnan(st), -np.inf, st)

    def to_dict(self) -> dict:
        return {k: [None if x != x else float(x) for x in getattr(self, k).tolist()]
                for k in ("stop", "take", "trail_frac", "trail_dist", "high")}

    @classmethod
    def from_dict(cls, d: dict, n: int) -> "Levels":
        if not d:
            return cls.empty(n)
        return cls(*(np.array([_NAN if x is None else x for x in d[k]], dtype=np.float64)
                     for k in ("stop", "take", "trail_frac", "trail_dist", "high")))


class Protector:
    """Fixes levels at entry and fills the protections of a run's positions inside each bar."""

    def __init__(self, rules: ProtectRules, market: MarketData, store, levels: Levels | None = None):
        self.rules = rules
        self.market = market
        self.active = rules.active
        n = market.n_symbols
        self.levels = levels if levels is not None else Levels.empty(n)
        self._dist = {pr.kind: _distance(pr, store) for pr in rules.prices}
        self._last: dict[str, np.ndarray] = {}  # the previous chunk's last row of each distance

    def leave(self) -> None:
        """The chunk's bars are done (engine/backtest/engine.py): keep a copy of its last row of
        each distance (an entry at the next chunk's first bar reads it) and let go of its market
        and distances, so they are not held while the next chunk is read."""
        self._last = {k: d[-1].copy() for k, d in self._dist.items() if d is not None and d.shape[0]}
        self._dist = {}
        self.market = None

    def rebind(self, market: MarketData, store) -> None:
        """Read the next chunk of bars (engine/backtest/engine.py): the levels stay, the distances
        are the chunk's, and an entry at the chunk's first bar reads the previous chunk's last row
        (its decision bar)."""
        if self.market is not None:  # the previous chunk was not left yet
            self.leave()
        self.market = market
        self._dist = {pr.kind: _distance(pr, store) for pr in self.rules.prices}

    def _dist_at(self, kind: str, dec: int) -> np.ndarray:
        """The distance row of decision bar ``dec`` (-1: the previous chunk's last bar)."""
        if dec < 0:
            return self._last[kind] if kind in self._last else self._dist[kind][0]
        return self._dist[kind][dec]

    # -- entry -------------------------------------------------------------------------------

    def on_entry(self, t: int, idx: np.ndarray, pf: Portfolio) -> None:
        """Fix the levels of the positions ``idx`` opened in bar t (decided at t - 1)."""
        if not self.active or not idx.size:
            return
        entry = pf.entry_price[idx]
        dec = t - 1
        lv = self.levels
        lv.clear(idx)
        lv.high[idx] = entry
        r = self.rules
        if r.stop_loss is not None:
            lv.stop[idx] = self._level(r.stop_loss, dec, idx, entry, -1.0)
        if r.take_profit is not None:
            lv.take[idx] = self._level(r.take_profit, dec, idx, entry, 1.0)
        if r.trailing_stop is not None:
            if r.trailing_stop.fraction is not None:
                lv.trail_frac[idx] = r.trailing_stop.fraction
            else:
                d = self._dist_at("trailing_stop", dec)[idx]
                lv.trail_dist[idx] = np.where(d > 0, d, _NAN)  # NaN compares False: off

    def _level(self, pr: Protection, dec: int, idx: np.ndarray, entry: np.ndarray, side: float) -> np.ndarray:
        if pr.fraction is not None:
            return entry + side * (entry * pr.fraction)  # see Levels.trail: 1 + f rounds
        d = self._dist_at(pr.kind, dec)[idx]
        return np.where(d > 0, entry + side * d, _NAN)

    # -- inside a bar ------------------------------------------------------------------------

    def step(self, broker, t: int, pf: Portfolio) -> list:
        """Fill the protections that bar t triggers (after the bar's other fills), then take
        bar t's high into the trailing stops. Returns the fills (also in ``broker.fills``)."""
        if not self.active:
            return []
        idx = (pf.qty > 0).nonzero()[0]
        if not idx.size:
            return []
        m = self.market
        o, h, lo = m.open[t, idx], m.high[t, idx], m.low[t, idx]
        lv = self.levels
        stop, trailing = lv.stop_level(idx)
        take = lv.take[idx]
        # the open: only for positions held before it (an entry fills at this open)
        before = pf.entry_bar[idx] < t
        gap_stop = before & (o <= stop)
        gap_take = before & ~gap_stop & (o >= take)
        ts = self.rules.time_stop
        timed = before & ~gap_stop & ~gap_take & ((t - pf.entry_bar[idx] >= ts) if ts is not None else False)
        at_open = gap_stop | gap_take | timed
        hit_stop = ~at_open & (lo <= stop)
        hit_take = ~at_open & ~hit_stop & (h > take)
        fire = at_open | hit_stop | hit_take
        fired = fire.nonzero()[0]
        out: list = []
        if fired.size:
            price = np.where(at_open, o, np.where(hit_stop, stop, take))[fired]
            stop_kind = np.where(trailing, "protect:trailing_stop", "protect:stop_loss")
            kind = np.where(gap_stop | hit_stop, stop_kind,
                            np.where(gap_take | hit_take, "protect:take_profit", "protect:time_stop"))[fired]
            sidx = idx[fired]
            q = broker.capped(t, sidx, pf.qty)
            trading = q > 0
            sidx, q, price, kind = sidx[trading], q[trading], price[trading], kind[trading]
            if sidx.size:
                out = broker.sell(t, sidx, q, pf, kind.tolist(), price=price)
                broker.fills.extend(out)
                # what the participation cap left is sold at the next opens, as an exit under way
                left = sidx[pf.qty[sidx] > 0]
                pf.exiting[left] = True
                lv.clear(sidx[pf.qty[sidx] <= 0])
        held = idx[pf.qty[idx] > 0]
        lv.high[held] = np.fmax(lv.high[held], m.high[t, held])  # after the bar, never within it
        return out

    # -- across quiet bars (the backtest's fast path) ------------------------------------------

    def horizon(self, pf: Portfolio, t0: int, t1: int) -> int:
        """The first bar in [t0, t1) where a protection of a held position may fire (or t1),
        with no fill before it: the highest highs run over the bars between."""
        if not self.active or t0 >= t1:
            return t1
        idx = (pf.qty > 0).nonzero()[0]
        if not idx.size:
            return t1
        m = self.market
        sl = slice(t0, t1)
        o, h, lo = m.open[sl, idx], m.high[sl, idx], m.low[sl, idx]
        lv = self.levels
        # the highest high a bar is checked against: the stored one and the bars before it
        run = np.fmax.accumulate(np.vstack([lv.high[idx][None, :], h[:-1]]), axis=0)
        stop, _ = lv.stop_level(idx, run)
        take = lv.take[idx]
        fire = (o <= stop) | (lo <= stop) | (o >= take) | (h > take)
        ts = self.rules.time_stop
        if ts is not None:
            bars = np.arange(t0, t1)[:, None]
            fire |= bars - pf.entry_bar[idx][None, :] >= ts
        rows = fire.any(axis=1).nonzero()[0]
        return t0 + int(rows[0]) if rows.size else t1

    def advance(self, pf: Portfolio, t0: int, t1: int) -> None:
        """Take the highs of the bars [t0, t1), quiet (no fill), into the trailing stops."""
        if not self.active or t0 >= t1:
            return
        idx = (pf.qty > 0).nonzero()[0]
        if idx.size:
            hi = np.fmax.reduce(self.market.high[t0:t1, idx], axis=0)
            self.levels.high[idx] = np.fmax(self.levels.high[idx], hi)
