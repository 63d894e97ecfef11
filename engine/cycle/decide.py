"""One cycle: a pure function of (the run's plan, bar t, portfolio, quotes, halt state).

Stages run in order — regime, universe, signals, risk, execution — over the whole universe
at once. The result is a :class:`Decision` (order quantities per symbol plus the trace of
which rule decided what) and a :class:`StateChange` (halts fired, a re-armed drawdown peak,
exits under way) that the caller applies: ``decide`` writes into none of its inputs.
No I/O, no clock, no exchange: every mode calls this same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.cycle.npfast import any_, nan_to_num, nonzero, row
from engine.cycle.portfolio import Portfolio

_count = np.count_nonzero
_accumulate = np.add.accumulate
_sum = np.add.reduce
# np.clip(a, lo, hi) is this ufunc behind a Python wrapper (numpy/_core/_methods.py: _clip)
# (a private path: fall back to the public wrapper on a numpy that moves it)
_clip = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", None) or np.clip
from engine.cycle.plan import CapStep, CyclePlan, HaltState, cycle_plan  # noqa: F401 (re-exported)
from engine.cycle.prepare import Prepared, RuleGroup
from engine.cycle.state import StateChange


@dataclass
class Quotes:
    """What execution guards read at decision time (per symbol)."""

    price: np.ndarray  # (N,) reference price (last close or mid)
    spread_bps: np.ndarray  # (N,)
    age_s: np.ndarray  # (N,) seconds since observed (0 in a backtest)
    bar_volume_usd: np.ndarray  # (N,) quote volume of the last bar, for the impact estimate


@dataclass
class Decision:
    t: int
    regime: str
    sell_qty: np.ndarray  # (N,) >= 0
    buy_qty: np.ndarray  # (N,) >= 0
    entry_rule: list[str]  # rule id per symbol that opened (for buys)
    exit_rule: list[str]  # rule id per symbol that closed (for sells)
    halts: list[str]  # halts active this cycle
    # trace: rule id -> (N,) bool verdicts evaluated this cycle for cycle-level rules,
    # plus stage masks; series-level verdicts are rows of the prepared arrays
    cycle_verdicts: dict[str, np.ndarray]
    candidates: np.ndarray  # (N,) entry candidates before risk
    clipped: dict[str, np.ndarray]  # cap id -> (N,) bool, weight reduced by that cap
    blocked: dict[str, np.ndarray]  # guard id -> (N,) bool, an order it stopped
    exit_intent: np.ndarray  # (N,) an exit was decided (kept until flat, even if guards held it)
    # (N,) limit price per order (NaN: market order); None when every order is a market order
    limit_price: np.ndarray | None = None
    # cap id -> (N,) bool: a candidate the cap cut to nothing (a subset of ``clipped``), and a
    # candidate that reached the cap with a weight and passed it untouched
    cap_blocked: dict[str, np.ndarray] = field(default_factory=dict)
    cap_passed: dict[str, np.ndarray] = field(default_factory=dict)
    # protection id -> (N,) bool: an entry candidate its scoped lock blocked (engine/cycle/locks.py)
    locked: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def has_orders(self) -> bool:
        return bool(_count(self.sell_qty) or _count(self.buy_qty))  # .any() without its wrapper


def _eval_group(g: RuleGroup, env: dict, t: int, combine: str, verdicts: dict) -> np.ndarray:
    out = g.combined[t]
    for c in g.cycle:
        if c.regime_ok is not None and not c.regime_ok[t]:
            continue
        v = np.asarray(c.fn(env, t), dtype=bool)
        verdicts[c.rule.id] = v
        out = (out | v) if combine == "or" else (out & v)
    return out


def _first_rule(rules: list[tuple[str, np.ndarray | None]], t: int, verdicts: dict, mask: np.ndarray) -> list[str]:
    """Which rule decided each masked symbol (first in file order), for the trade log."""
    n = mask.shape[0]
    out = [""] * n
    left = mask
    for rid, series in rules:
        v = verdicts.get(rid)
        if v is None:
            if series is None:  # a per-cycle rule outside its regimes: it did not decide
                continue
            v = series[t]
        hit = left & v
        for i in hit.nonzero()[0].tolist():
            out[i] = rid
        left = left & ~hit
        if not any_(left):
            break
    return out


def _allocate(w: np.ndarray, room) -> np.ndarray:
    """Give each weight (in priority order, along the last axis) what is left of ``room`` (a
    float, or an (R, 1) column for rows of weights)."""
    before = _accumulate(w, axis=-1) - w  # np.cumsum(w), without its Python wrapper
    return _clip(room - before, 0.0, w)  # the ufunc np.clip calls


def decide(plan: CyclePlan, t: int, pf: Portfolio, quotes: Quotes, halts: HaltState) -> tuple[Decision, StateChange]:
    """The decision at bar ``t`` and the state changes it implies (the caller applies them:
    :func:`engine.cycle.state.apply_change`)."""
    p = plan.p
    n = p.market.n_symbols
    held = pf.qty > 0
    any_held = any_(held)
    close = quotes.price
    env = pf.env(close, t) if plan.needs_env else {}
    verdicts: dict[str, np.ndarray] = {}

    # risk halts (portfolio level): they fire, then hold for their cooldown
    active, block, flatten = [], False, False
    until = halts.until
    fired: dict[str, int] = {}
    peak = None
    for h in plan.halts:
        u = until.get(h.id, -1)
        if u == t and h.flatten:
            # the cooldown is over: re-arm by measuring drawdown from here, otherwise a
            # drawdown halt would hold forever once the account is flat (this cycle's rules
            # already read the old peak: env was built above)
            peak = pf.equity
        elif u < t and bool(h.fn(env, t)):
            u = fired[h.id] = t + h.cooldown_bars
        if u > t:
            active.append(h.id)
            block = True
            flatten |= h.flatten

    # exits: a rule says so, a flatten halt, or an exit already under way
    # a book: the strategy that opened each held position (-1: none), read by exits and sizing
    owner = None
    if p.book is not None:
        owner = np.full(n, -1, dtype=np.int64)
        if any_held:
            hidx = nonzero(held)
            owner[hidx] = p.book.owners(pf.entry_rule, hidx)
    if any_held:
        if owner is None:
            exit_sig = _eval_group(p.exits, env, t, "or", verdicts)
        else:  # a book: a position closes on the exits of the strategy that opened it
            exit_sig = np.zeros(n, dtype=bool)
            for k, sl in enumerate(p.book.sleeves):
                mine = owner == k
                if any_(mine):
                    exit_sig |= _eval_group(sl.exits, env, t, "or", verdicts) & mine
        exiting = held & (exit_sig | flatten | pf.exiting)
    else:
        exiting = np.zeros(n, dtype=bool)
    sell = np.where(exiting, pf.qty, 0.0)
    exit_rule = [""] * n
    if any_(exiting):
        if owner is None:
            exit_rule = _first_rule(plan.exit_rules, t, verdicts, held & exit_sig)
        else:
            for k, rules in enumerate(plan.sleeve_exit_rules):
                mine = held & exit_sig & (owner == k)
                if any_(mine):
                    got = _first_rule(rules, t, verdicts, mine)
                    for i in nonzero(mine).tolist():
                        exit_rule[i] = got[i]
        if flatten:
            exit_rule = [r or ("halt:" + active[-1] if exiting[i] else "") for i, r in enumerate(exit_rule)]

    # entries: signal, in the universe, tradable now, not vetoed, no halt
    buy = np.zeros(n)
    caps_seen = _NO_CAPS
    cand = ~held & plan.buyable[t]
    if not block and any_(cand):
        cand &= _eval_group(p.entries, env, t, "or", verdicts)
    else:
        cand = np.zeros(n, dtype=bool)
    locked: dict[str, np.ndarray] = {}
    lk = halts.locks
    if lk is not None and any_(cand):
        hit = cand & (lk.until > t)
        if any_(hit):
            for pid in sorted(set(lk.by[hit].tolist())):
                locked[pid] = hit & (lk.by == pid)
            cand = cand & ~hit
    if plan.has_vetoes and any_(cand):
        cand &= _eval_group(p.vetoes, env, t, "and", verdicts)
    entry_rule = [""] * n
    if any_(cand):
        entry_rule = _first_rule(plan.entry_rules, t, verdicts, cand)
        buy, caps_seen = _size(plan, t, env, pf, close, cand, exiting, entry_rule, owner)

    # execution: round, then guards over every symbol with an order
    buy = _round_down(buy, p.size_increment)
    order_qty = buy + sell
    blocked: dict[str, np.ndarray] = {}
    has = order_qty > 0
    any_order = any_(has)
    if any_order:
        ok = apply_guards(p, env if env else pf.env(close, t), t, order_qty, buy > 0, close, quotes, verdicts, blocked)
        buy = np.where(ok, buy, 0.0)
        sell = np.where(ok, sell, 0.0)
    limit = limit_prices(p, close, buy, sell) if any_order else None
    clipped, cap_blocked, cap_passed = caps_seen
    d = Decision(t, p.regime_labels[p.regime_idx[t]], sell, buy, entry_rule, exit_rule, active,
                 verdicts, cand, clipped, blocked, exiting, limit, cap_blocked, cap_passed, locked)
    change = StateChange(t, HaltState({**until, **fired}, halts.locks) if fired else halts, peak,
                         pf.exiting | exiting if pf.exiting is not None else exiting.copy())
    return d, change


_NO_CAPS: tuple[dict, dict, dict] = ({}, {}, {})


def apply_guards(p: Prepared, env, at, order_qty: np.ndarray, is_entry: np.ndarray, close: np.ndarray,
                 quotes: Quotes, verdicts: dict, blocked: dict) -> np.ndarray:
    """Every execution guard over the orders (``order_qty`` > 0, (N,)): which may go (``ok``), with
    each per-cycle guard's verdict into ``verdicts`` and what each guard stopped into ``blocked``.

    ``at``: the bar (``close`` and the quotes' arrays (N,), ``env`` the cycle's), or a window of
    bars over which the orders stand unchanged (exits under way whose sells the guards keep
    holding back, engine/cycle/held_back.py: ``close`` and the quotes' per-bar arrays (m, N),
    ``env`` the block's). The formulas are elementwise, so a window gives each bar's verdicts."""
    has = order_qty > 0
    notional = order_qty * close
    with np.errstate(divide="ignore", invalid="ignore"):
        impact = np.where(quotes.bar_volume_usd > 0, notional / quotes.bar_volume_usd * 100.0, 0.0)
    genv = env.extended({
        "order.notional": notional,
        "order.is_entry": is_entry,
        "order.est_slippage_bps": nan_to_num(quotes.spread_bps) / 2.0 + impact,
        "quote_age_s": quotes.age_s,
    })
    ok = np.ones(notional.shape, dtype=bool)
    for s in p.guards.series:
        m = s.mask[at]
        blocked[s.rule.id] = has & ~m
        ok &= m
    for c in p.guards.cycle:
        on = None if c.regime_ok is None else c.regime_ok[at]
        if on is not None and not np.ndim(on):
            if not on:
                continue  # outside its regimes this cycle: not evaluated
            on = None
        m = np.asarray(c.fn(genv, at), dtype=bool)
        if on is not None:  # a window: the bars outside its regimes have no verdict and block nothing
            m = np.broadcast_to(m, notional.shape) & on[:, None]
            blocked[c.rule.id] = has & ~m & on[:, None]
            ok &= m | ~on[:, None]
        else:
            blocked[c.rule.id] = has & ~m
            ok &= m
        # a guard judges orders: its verdict is kept for the symbols with one (the trace's
        # cycle_true:<guard>, rule_stats' passed), not for every symbol of the universe
        verdicts[c.rule.id] = m & has
    return ok


def order_spec(p: Prepared) -> tuple[str, float]:
    """(order type, limit offset in bps) from the execution rule file's ``order:`` block."""
    ex = p.rules.execution
    return ex.order_type, ex.offset_bps


def limit_prices(p: Prepared, close: np.ndarray, buy: np.ndarray, sell: np.ndarray) -> np.ndarray | None:
    """Limit orders rest ``offset_bps`` from the decision's close: buys below, sells above
    (a negative offset crosses the market and fills at once, capped at the limit)."""
    kind, offset = order_spec(p)
    if kind != "limit":
        return None
    k = offset / 1e4
    return np.where(buy > 0, close * (1.0 - k), np.where(sell > 0, close * (1.0 + k), np.nan))


def _size(plan: CyclePlan, t: int, env: dict, pf: Portfolio, close: np.ndarray, cand: np.ndarray,
          exiting: np.ndarray, entry_rule: list, owner: np.ndarray | None
          ) -> tuple[np.ndarray, tuple[dict, dict, dict]]:
    """Target weights for the candidates, clipped by each cap in the risk file's order.

    Returns the quantities and, per cap id, (N,) masks of the candidates it clipped (weight
    reduced), blocked (reduced to nothing) and passed (reached it with a weight, untouched)."""
    p = plan.p
    n = cand.shape[0]
    idx = nonzero(cand)
    marks: tuple[dict, dict, dict] = ({}, {}, {})
    if p.book is not None:
        idx, w = _size_book(plan, t, env, pf, close, idx, entry_rule, exiting, owner, marks)
    else:
        idx, w = ordered_weights(p.size(env, t), p.priority(env, t) if p.priority is not None else None, n, idx)
    equity = pf.equity if pf.equity > 0 else 0.0
    w = apply_caps(plan, pf.qty, (pf.qty > 0) & ~exiting, close[None, :], np.array([equity]), idx[None, :],
                   w[None, :], np.ones((1, idx.size), dtype=bool), marks)[0]
    qty = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        qty[idx] = np.where(close[idx] > 0, w * equity / close[idx], 0.0)
    return qty, tuple({cid: m[0] for cid, m in d.items()} for d in marks)  # type: ignore[return-value]


def ordered_weights(size, priority, n: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidates, target weights) in priority order: ``size`` and ``priority`` are one bar's
    values of the strategy's expressions (a constant or an (N,) row; priority None: symbol order)."""
    w = nan_to_num(np.maximum(row(np.asarray(size, dtype=np.float64), n)[idx], 0.0))
    if priority is not None:
        order = _by_priority(priority, n, idx)
        idx, w = idx[order], w[order]
    return idx, w


def _by_priority(values, n: int, idx: np.ndarray) -> np.ndarray:
    """The order of candidates ``idx`` by descending priority (NaN last, ties in symbol order)."""
    pr = row(np.asarray(values, dtype=np.float64), n)[idx]
    if _count(np.isfinite(pr)) != pr.size:  # NaN ranks last (inf and -inf become finite)
        pr = np.nan_to_num(pr, nan=-np.inf)
    return (-pr).argsort(kind="stable")  # np.argsort without its wrapper


def book_shares(book, pf: Portfolio, close: np.ndarray, t: int, owner: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """Each strategy's share of equity this cycle: the fixed weights, or (inverse_vol) shares
    proportional to 1 / the value-weighted trailing volatility of what the strategy holds (of the
    universe's members when it holds nothing), summing to 1."""
    if book.allocation == "fixed":
        return np.array([sl.weight for sl in book.sleeves], dtype=np.float64)
    vol = book.vol[t]
    ok = np.isfinite(vol) & (vol > 0)
    pool = universe & ok
    base = float(vol[pool].mean()) if any_(pool) else 1.0
    value = np.where(pf.qty > 0, pf.qty * close, 0.0)
    sig = np.empty(len(book.sleeves))
    for k in range(len(book.sleeves)):
        mine = (owner == k) & ok & (value > 0)
        sig[k] = float((value[mine] * vol[mine]).sum() / value[mine].sum()) if any_(mine) else base
    inv = 1.0 / sig
    return inv / inv.sum()


def _size_book(plan: CyclePlan, t: int, env: dict, pf: Portfolio, close: np.ndarray, idx: np.ndarray,
               entry_rule: list, exiting: np.ndarray, owner: np.ndarray, marks: tuple[dict, dict, dict]
               ) -> tuple[np.ndarray, np.ndarray]:
    """A book's target weights: each candidate sized by the strategy whose entry opened it, times
    that strategy's share; candidates in book order, then by their strategy's priority; each
    strategy's positions within its share (cap ``book.<name>``, marked in ``marks``); the book's
    risk caps follow (:func:`apply_caps`)."""
    p = plan.p
    book = p.book
    n = close.shape[0]
    shares = book_shares(book, pf, close, t, owner, plan.buyable[t])
    sk = book.owners(entry_rule, idx)
    w = np.zeros(idx.size)
    order_parts = []
    for k, sl in enumerate(book.sleeves):
        sel = nonzero(sk == k)
        if not sel.size:
            continue
        ik = idx[sel]
        wk = nan_to_num(np.maximum(row(np.asarray(sl.size(env, t), dtype=np.float64), n)[ik], 0.0)) * shares[k]
        if sl.priority is not None:
            o = _by_priority(sl.priority(env, t), n, ik)
            sel, wk = sel[o], wk[o]
        w[sel] = wk
        order_parts.append(sel)
    order = np.concatenate(order_parts) if order_parts else np.zeros(0, dtype=np.int64)
    idx, w, sk = idx[order], w[order], sk[order]
    # each strategy within its share of equity: what it keeps plus what it buys
    equity = pf.equity if pf.equity > 0 else 0.0
    keep = (pf.qty > 0) & ~exiting
    held_w = np.where(keep, pf.qty * close, 0.0) / equity if equity > 0 else np.zeros(n)
    new = w.copy()
    valid = np.ones((1, idx.size), dtype=bool)
    for k, sl in enumerate(book.sleeves):
        sel = sk == k
        if any_(sel):
            room = max(float(shares[k]) - float(_sum(held_w[owner == k])), 0.0)
            new[sel] = _allocate(w[sel], room)
            if plan.records:
                _mark(n, idx[None, :], valid, f"book.{sl.name}", np.where(sel, w, 0.0)[None, :],
                      np.where(sel, new, 0.0)[None, :], marks)
    return idx, new


def _mark(n: int, idx: np.ndarray, valid: np.ndarray, cap_id: str, before: np.ndarray, after: np.ndarray,
          marks: tuple[dict, dict, dict]) -> None:
    """Record which candidates a cap clipped (weight reduced), blocked (to nothing) and passed:
    (R, N) masks per cap id in ``marks`` (clipped, blocked, passed), one row per row of ``idx``."""
    clipped, cap_blocked, cap_passed = marks

    def spread(m: np.ndarray) -> np.ndarray:
        out = np.zeros((idx.shape[0], n), dtype=bool)
        out[m.nonzero()[0], idx[m]] = True  # only the marked: a row's padding repeats a symbol
        return out
    less = (after < before - 1e-12) & valid
    if any_(less):
        # two caps of one id cannot exist (ids are unique per file); OR keeps it safe
        clipped[cap_id] = spread(less) | clipped.get(cap_id, False)
        gone = less & ~(after > 0)
        if any_(gone):
            cap_blocked[cap_id] = spread(gone)
    passed = (before > 0) & ~less & valid
    if any_(passed):
        cap_passed[cap_id] = spread(passed)


def apply_caps(plan: CyclePlan, qty: np.ndarray, keep: np.ndarray, close: np.ndarray, equity: np.ndarray,
               idx: np.ndarray, w: np.ndarray, valid: np.ndarray, marks: tuple[dict, dict, dict]) -> np.ndarray:
    """Clip ordered candidates' weights by each risk cap in file order, for rows of bars over which
    the positions ``keep`` (of ``qty``) do not change: one bar in a cycle, or the bars of a quiet
    block whose candidates a full book turns away (engine/cycle/turned_away.py).

    ``close`` (R, N) and ``equity`` (R,, 0 when not positive) per row; ``idx`` / ``w`` (R, K): each
    row's candidates in priority order and their weights, ``valid`` marks the real ones (a shorter
    row is padded with weight 0). Returns the clipped weights (R, K); with ``plan.records`` each
    cap's marks go into ``marks``. Row by row the arithmetic is a cycle's: sums run left to right
    (a padding 0.0 adds nothing), so a block's rows equal its bars decided one at a time."""
    p = plan.p
    r, n = close.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        held_w = np.where(keep, qty * close, 0.0) / equity[:, None]
    held_w = np.where(equity[:, None] > 0, held_w, 0.0)
    rows = np.arange(r)[:, None]
    steps: list[tuple[str, np.ndarray, np.ndarray]] = []  # (cap id, weights before, after): marked at the end
    for cap in plan.caps:
        if cap.type == "asset_weight":
            new = np.minimum(w, cap.asset[idx])
        elif cap.type == "theme_weight":
            th = p.themes[idx]
            k = len(cap.theme)
            # per row, as np.bincount(themes, weights=held_w): each theme's sum in symbol order
            held_th = np.bincount((rows * k + p.themes[None, :]).ravel(), weights=held_w.ravel(),
                                  minlength=r * k).reshape(r, k)
            room = np.maximum(cap.theme[None, :] - held_th, 0.0)
            new = w.copy()
            for code in sorted(set(th[valid].tolist())):  # loop over the candidates' themes only (a handful)
                sel = (th == code) & valid
                new = np.where(sel, _allocate(np.where(sel, w, 0.0), room[:, code:code + 1]), new)
        elif cap.type == "total_weight":
            new = _allocate(w, np.maximum(cap.limit - _sum(held_w, axis=1), 0.0)[:, None])
        else:  # position_count
            slots = max(int(cap.limit) - _count(keep), 0)
            new = np.where(_accumulate(w > 0, axis=1, dtype=np.intp) <= slots, w, 0.0)
        steps.append((cap.id, w, new))
        w = new
    if plan.records:
        for cap_id, before, after in steps:
            _mark(n, idx, valid, cap_id, before, after, marks)
    return w


def _round_down(qty: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Quantities rounded down to each product's size increment (never up: no overspend)."""
    out = np.zeros(qty.shape)
    idx = (qty > 0).nonzero()[0]
    if idx.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[idx] = np.floor(qty[idx] / increment[idx] + 1e-9) * increment[idx]
    return out
