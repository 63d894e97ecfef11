"""The simulated broker: fills a cycle's orders during the next bar.

Fill model (docs/backtest.md lists it for users):
- a decision at bar t (after its close) fills in bar t+1, never at a price it saw;
- no fill on a missing bar (gap, halt, not yet listed) or a bar without volume (no trading):
  the order is dropped, and an exit stays pending so it is retried next cycle;
- market orders: buys pay open x (1 + slippage), sells receive open x (1 - slippage), taker fee;
- limit orders (price L): marketable at the open (buy: open <= L, sell: open >= L) they fill
  like a market order, but never beyond L, taker fee; otherwise they rest and fill at L,
  maker fee, no slippage, only if the bar trades *through* L (buy: low < L, sell: high > L);
  a bar that only touches L does not fill them; unfilled, they are cancelled at the bar's end;
- fill quantity is capped at ``max_participation`` x the bar's volume (partial fills);
- the fee of the current tier is charged in quote currency on the fill's notional;
- sells fill before buys; buys are scaled down to the cash the account has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.sim.costs import FeeSchedule, SlippageModel
from engine.cycle.decide import Decision
from engine.cycle.npfast import nan_to_num
from engine.cycle.portfolio import Portfolio
from engine.market.data import MarketData, iso_utc


@dataclass
class Fill:
    t: int
    symbol_idx: int
    side: str
    qty: float
    price: float
    fee: float
    slippage: float  # quote-currency cost versus the open (0 for a resting limit order)
    rule: str


@dataclass
class SimBroker:
    market: MarketData
    fees: FeeSchedule
    slippage: SlippageModel
    size_increment: np.ndarray
    max_participation: float = 0.1
    rng: np.random.Generator | None = None
    fills: list[Fill] = field(default_factory=list)
    cuts: "ParticipationCuts" = field(default_factory=lambda: ParticipationCuts())
    # called with (t, symbols that opened a position, portfolio) after a bar's buys: the
    # protections fix their levels at entry (engine/sim/protect.py)
    on_entry: Callable[[int, np.ndarray, Portfolio], None] | None = None

    def _prices(self, t: int, idx: np.ndarray, q: np.ndarray, side: int, limit: np.ndarray | None,
                tier, price: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fill price, fee rate, filled?, slippage reference price) of orders ``idx`` in bar t;
        side +1 buy, -1 sell. The reference is the open (or ``price``: the last close for a
        close-out, a stop's level), or the limit for a resting limit order (it fills at its
        price: no slippage)."""
        m = self.market
        px = m.open[t, idx] if price is None else price
        bar_usd = nan_to_num(m.volume[t, idx] * px)
        slip_bps = self.slippage.bps(m.spread_bps[t, idx], q * px, bar_usd, self.rng)
        fill_px = px * (1.0 + side * slip_bps / 1e4)
        rate = np.full(idx.shape, tier.taker_bps / 1e4)
        filled = np.ones(idx.shape, dtype=bool)
        ref = px
        if limit is not None:
            lim = limit[idx]
            has = ~np.isnan(lim)
            marketable = has & (side * (lim - px) >= 0)
            resting = has & ~marketable
            through = (m.low[t, idx] < lim) if side > 0 else (m.high[t, idx] > lim)
            fill_px = np.where(marketable, np.minimum(fill_px, lim) if side > 0 else np.maximum(fill_px, lim), fill_px)
            fill_px = np.where(resting, lim, fill_px)
            rate = np.where(resting, tier.maker_bps / 1e4, rate)
            filled = ~resting | through
            ref = np.where(resting, lim, px)
        return fill_px, rate, filled, ref

    def execute(self, d: Decision, t: int, pf: Portfolio) -> list[Fill]:
        m = self.market
        # only the symbols with an order are looked at: a cycle orders a handful of the universe
        sidx = (d.sell_qty > 0).nonzero()[0]
        bidx = (d.buy_qty > 0).nonzero()[0]
        now = int(m.times[t])
        limit = getattr(d, "limit_price", None)  # the dry run's replayed orders carry none
        out: list[Fill] = []

        if sidx.size:
            sell = self.capped(t, sidx, d.sell_qty)
            out += self.sell(t, sidx, sell, pf, [d.exit_rule[i] for i in sidx.tolist()], limit)

        if bidx.size:
            buy = self.capped(t, bidx, d.buy_qty)
            inc = self.size_increment[bidx]
            # a buy cut by the participation cap is rounded down to the increment again
            with np.errstate(divide="ignore", invalid="ignore"):
                buy = np.where(buy < d.buy_qty[bidx], np.floor(buy / inc + 1e-9) * inc, buy)
            keep = buy > 0
            idx, q = bidx[keep], buy[keep]
        if bidx.size and idx.size:
            # this bar's sells count towards the tier its buys pay
            tier = self.fees.tier(now)
            fill_px, fee_rate, filled, ref = self._prices(t, idx, q, 1, limit, tier)
            px = ref
            if limit is not None:  # market orders all fill (``filled`` is all True)
                idx, fill_px, fee_rate, q = idx[filled], fill_px[filled], fee_rate[filled], q[filled]
                px = ref[filled]
            cost = q * fill_px * (1.0 + fee_rate)
            total = float(cost.sum())
            if total > pf.cash:
                scale = max(pf.cash, 0.0) / total
                q = np.floor(q * scale / self.size_increment[idx]) * self.size_increment[idx]
                keep = q > 0
                idx, q, px, fill_px, fee_rate = idx[keep], q[keep], px[keep], fill_px[keep], fee_rate[keep]
            notional = q * fill_px
            fee = notional * fee_rate
            pf.cash -= float(notional.sum() + fee.sum())
            prev = pf.qty[idx]
            new_qty = prev + q
            prev_cost = np.where(prev > 0, prev * nan_to_num(pf.entry_price[idx]), 0.0)
            pf.entry_price[idx] = (prev_cost + notional) / new_qty
            pf.entry_bar[idx] = np.where(prev > 0, pf.entry_bar[idx], t)
            pf.qty[idx] = new_qty
            for k, i in enumerate(idx.tolist()):
                if prev[k] == 0:
                    pf.entry_rule[i] = d.entry_rule[i]
                out.append(Fill(t, i, "buy", float(q[k]), float(fill_px[k]), float(fee[k]),
                                float(q[k] * (fill_px[k] - px[k])), d.entry_rule[i]))
                self.fees.record(now, float(notional[k]))
            if self.on_entry is not None:
                self.on_entry(t, idx[prev == 0], pf)
        self.fills.extend(out)
        return out

    def sell(self, t: int, sidx: np.ndarray, qty: np.ndarray, pf: Portfolio, rules: list[str],
             limit: np.ndarray | None = None, price: np.ndarray | None = None) -> list[Fill]:
        """Sell ``qty`` (aligned with ``sidx``, already capped) of symbols ``sidx`` in bar t at the
        open (or at ``price``, aligned with ``sidx``), rounded to the increment, at the fee tier
        reached before this sell. Returns the fills (not yet added to ``self.fills``)."""
        now = int(self.market.times[t])
        sell = _round(qty, self.size_increment[sidx], pf.qty[sidx])
        keep = sell > 0
        idx, q = sidx[keep], sell[keep]
        if not idx.size:
            return []
        price = None if price is None else price[keep]
        rules = [r for r, k in zip(rules, keep.tolist()) if k]
        fill_px, fee_rate, filled, ref = self._prices(t, idx, q, -1, limit, self.fees.tier(now), price)
        px = ref
        if limit is not None:  # market orders all fill (``filled`` is all True)
            idx, fill_px, fee_rate, q = idx[filled], fill_px[filled], fee_rate[filled], q[filled]
            rules = [r for r, k in zip(rules, filled.tolist()) if k]
            px = ref[filled]
        notional = q * fill_px
        fee = notional * fee_rate
        pf.cash += float(notional.sum() - fee.sum())
        pf.qty[idx] -= q
        flat = idx[pf.qty[idx] <= self.size_increment[idx] * 1e-6]
        pf.qty[flat] = 0.0
        pf.exiting[flat] = False
        out = []
        for k, i in enumerate(idx.tolist()):
            out.append(Fill(t, i, "sell", float(q[k]), float(fill_px[k]), float(fee[k]),
                            float(q[k] * (px[k] - fill_px[k])), rules[k]))
            self.fees.record(now, float(notional[k]))
        return out

    def close_out(self, t: int, pf: Portfolio, rule: str = "close_at_end") -> list[Fill]:
        """Sell every open position at bar t's close, with slippage and the taker fee like any
        market sell (``backtest.close_at_end``; backtesting.py's ``finalize_trades``). No
        participation cap: the run is over and the positions are closed whole, as there."""
        m = self.market
        idx = ((pf.qty > 0) & ~np.isnan(m.close[t])).nonzero()[0]
        if not idx.size:
            return []
        out = self.sell(t, idx, pf.qty[idx].copy(), pf, [rule] * idx.size, price=m.close[t, idx])
        self.fills.extend(out)
        return out

    def capped(self, t: int, idx: np.ndarray, qty: np.ndarray) -> np.ndarray:
        """Order quantities ``qty[idx]`` capped by the bar's volume participation; zero where
        the product is not trading (a missing bar, or one without volume). Orders the cap cuts
        are counted in ``self.cuts`` (the run's participation diagnostic)."""
        m = self.market
        opened, vol = m.open[t, idx], m.volume[t, idx]
        ok = ~np.isnan(opened) & (vol > 0)  # NaN volume compares False, as nan_to_num(vol) > 0
        vol_cap = np.where(np.isnan(vol), 0.0, vol) * self.max_participation
        want = qty[idx]
        out = np.where(ok, np.minimum(want, vol_cap), 0.0)
        self.cuts.count(ok, want, out, opened)
        return out


@dataclass
class ParticipationCuts:
    """What the volume participation cap (fill model item 4) cut from the orders of a run."""

    orders: int = 0  # orders on a trading bar (the cap could apply)
    cut: int = 0  # of those, how many it cut
    wanted_notional: float = 0.0  # of the cut orders, at the open
    cut_notional: float = 0.0  # what the cap removed from them, at the open
    max_cut_share: float = 0.0  # the largest share of one order it removed

    def count(self, ok: np.ndarray, want: np.ndarray, got: np.ndarray, px: np.ndarray) -> None:
        self.orders += int(np.count_nonzero(ok))
        hit = ok & (got < want)
        if not np.count_nonzero(hit):
            return
        w, g, p = want[hit], got[hit], px[hit]
        self.cut += int(w.size)
        self.wanted_notional += float((w * p).sum())
        self.cut_notional += float(((w - g) * p).sum())
        self.max_cut_share = max(self.max_cut_share, float(((w - g) / w).max()))

    def as_dict(self, max_participation: float) -> dict:
        return {"max_participation": max_participation, "orders": self.orders, "cut": self.cut,
                "wanted_notional": self.wanted_notional, "cut_notional": self.cut_notional,
                "cut_share": self.cut_notional / self.wanted_notional if self.wanted_notional > 0 else 0.0,
                "max_cut_share": self.max_cut_share}


def _round(qty: np.ndarray, inc: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Round a sell down to the increment, but sell everything when that is all that is left."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.floor(qty / inc + 1e-9) * inc
    return np.where(qty >= held - inc * 1e-6, np.minimum(qty, held), r)


def fill_to_dict(f: Fill, market: MarketData) -> dict:
    return {
        "symbol": market.symbols[f.symbol_idx],
        "side": f.side,
        "time": iso_utc(int(market.times[f.t])),
        "qty": f.qty,
        "price": f.price,
        "notional": f.qty * f.price,
        "fee": f.fee,
        "slippage": f.slippage,
        "rule": f.rule,
    }
