"""One cycle: a pure function of (prepared rules and history, bar t, portfolio, quotes).

Stages run in order — regime, universe, signals, risk, execution — over the whole universe
at once. The result is a :class:`Decision`: order quantities per symbol plus the trace of
which rule decided what. No I/O, no clock, no exchange: every mode calls this same code.
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
from engine.cycle.prepare import Prepared, RuleGroup


@dataclass
class Quotes:
    """What execution guards read at decision time (per symbol)."""

    price: np.ndarray  # (N,) reference price (last close or mid)
    spread_bps: np.ndarray  # (N,)
    age_s: np.ndarray  # (N,) seconds since observed (0 in a backtest)
    bar_volume_usd: np.ndarray  # (N,) quote volume of the last bar, for the impact estimate


@dataclass
class HaltState:
    until: dict[str, int] = field(default_factory=dict)  # halt id -> first bar it no longer holds


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

    @property
    def has_orders(self) -> bool:
        return bool(_count(self.sell_qty) or _count(self.buy_qty))  # .any() without its wrapper


@dataclass
class CapTables:
    """Risk caps resolved against the universe's symbols and themes."""

    asset: np.ndarray | None  # (N,) per-asset weight cap
    theme: np.ndarray | None  # (n_themes,) per-theme weight cap
    total: float | None
    count: int | None
    ids: dict[str, str]  # cap type -> rule id


def cap_tables(p: Prepared) -> CapTables:
    asset = theme = total = count = None
    ids = {}
    symbols = p.market.symbols
    for c in p.rules.risk.caps:
        ids[c.type] = c.id
        if c.type == "asset_weight":
            asset = np.array([c.per_symbol.get(s, c.limit) for s in symbols], dtype=np.float64)
        elif c.type == "theme_weight":
            theme = np.array([c.limits.get(th, c.limits["default"]) for th in p.theme_names])
        elif c.type == "total_weight":
            total = c.limit
        elif c.type == "position_count":
            count = int(c.limit)
    return CapTables(asset, theme, total, count, ids)


@dataclass
class _Plan:
    """Per-run constants of ``decide``, computed on its first call for a prepared run."""

    needs_env: bool
    has_vetoes: bool
    # per group: (rule id, its (T, N) mask for a series rule, None for a per-cycle rule)
    entry_rules: list[tuple[str, np.ndarray | None]]
    exit_rules: list[tuple[str, np.ndarray | None]]
    buyable: np.ndarray  # (T, N) in the universe and trading


def _plan(p: Prepared) -> _Plan:
    plan = p.extra.get("_decide_plan")
    if plan is None:
        def rules(g: RuleGroup) -> list[tuple[str, np.ndarray | None]]:
            masks = {id(s.rule): s.mask for s in g.series}
            return [(r.id, masks.get(id(r))) for r in g.rules]
        plan = p.extra["_decide_plan"] = _Plan(
            needs_env=bool(p.entries.cycle or p.exits.cycle or p.vetoes.cycle or p.halts or p.guards.cycle),
            has_vetoes=bool(p.vetoes.series or p.vetoes.cycle),
            entry_rules=rules(p.entries), exit_rules=rules(p.exits),
            buyable=p.universe & p.available,
        )
    return plan


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


def _allocate(w: np.ndarray, room: float) -> np.ndarray:
    """Give each weight (in priority order) what is left of ``room``."""
    before = _accumulate(w) - w  # np.cumsum(w), without its Python wrapper
    return _clip(room - before, 0.0, w)  # the ufunc np.clip calls


def decide(p: Prepared, t: int, pf: Portfolio, quotes: Quotes, halt_state: HaltState, caps: CapTables) -> Decision:
    plan = _plan(p)
    n = p.market.n_symbols
    held = pf.qty > 0
    any_held = any_(held)
    close = quotes.price
    env = pf.env(close, t) if plan.needs_env else {}
    verdicts: dict[str, np.ndarray] = {}

    # risk halts (portfolio level): they fire, then hold for their cooldown
    active, block, flatten = [], False, False
    for h, fn in p.halts:
        until = halt_state.until.get(h.rule.id, -1)
        if until == t and h.action == "flatten":
            # the cooldown is over: re-arm by measuring drawdown from here, otherwise a
            # drawdown halt would hold forever once the account is flat
            pf.peak_equity = pf.equity
        elif until < t and bool(fn(env, t)):
            halt_state.until[h.rule.id] = t + h.cooldown_bars
        if halt_state.until.get(h.rule.id, -1) > t:
            active.append(h.rule.id)
            block = True
            flatten |= h.action == "flatten"

    # exits: a rule says so, a flatten halt, or an exit already under way
    if any_held:
        exit_sig = _eval_group(p.exits, env, t, "or", verdicts)
        exiting = held & (exit_sig | flatten | pf.exiting)
    else:
        exiting = np.zeros(n, dtype=bool)
    sell = np.where(exiting, pf.qty, 0.0)
    exit_rule = [""] * n
    if any_(exiting):
        exit_rule = _first_rule(plan.exit_rules, t, verdicts, held & exit_sig)
        if flatten:
            exit_rule = [r or ("halt:" + active[-1] if exiting[i] else "") for i, r in enumerate(exit_rule)]

    # entries: signal, in the universe, tradable now, not vetoed, no halt
    buy = np.zeros(n)
    clipped: dict[str, np.ndarray] = {}
    cand = ~held & plan.buyable[t]
    if not block and any_(cand):
        cand &= _eval_group(p.entries, env, t, "or", verdicts)
    else:
        cand = np.zeros(n, dtype=bool)
    if plan.has_vetoes and any_(cand):
        cand &= _eval_group(p.vetoes, env, t, "and", verdicts)
    entry_rule = [""] * n
    if any_(cand):
        entry_rule = _first_rule(plan.entry_rules, t, verdicts, cand)
        buy, clipped = _size(p, t, env, pf, close, cand, exiting, caps)

    # execution: round, then guards over every symbol with an order
    buy = _round_down(buy, p.size_increment)
    order_qty = buy + sell
    blocked: dict[str, np.ndarray] = {}
    has = order_qty > 0
    any_order = any_(has)
    if any_order:
        notional = order_qty * close
        with np.errstate(divide="ignore", invalid="ignore"):
            impact = np.where(quotes.bar_volume_usd > 0, notional / quotes.bar_volume_usd * 100.0, 0.0)
        genv = (env if env else pf.env(close, t)).extended({
            "order.notional": notional,
            "order.is_entry": buy > 0,
            "order.est_slippage_bps": nan_to_num(quotes.spread_bps) / 2.0 + impact,
            "quote_age_s": quotes.age_s,
        })
        ok = np.ones(n, dtype=bool)
        for s in p.guards.series:
            m = s.mask[t]
            blocked[s.rule.id] = has & ~m
            ok &= m
        for c in p.guards.cycle:
            if c.regime_ok is not None and not c.regime_ok[t]:
                continue
            m = np.asarray(c.fn(genv, t), dtype=bool)
            verdicts[c.rule.id] = m
            blocked[c.rule.id] = has & ~m
            ok &= m
        buy = np.where(ok, buy, 0.0)
        sell = np.where(ok, sell, 0.0)
    limit = limit_prices(p, close, buy, sell) if any_order else None
    return Decision(t, p.regime_labels[p.regime_idx[t]], sell, buy, entry_rule, exit_rule, active,
                    verdicts, cand, clipped, blocked, exiting, limit)


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


def _size(p: Prepared, t: int, env: dict, pf: Portfolio, close: np.ndarray, cand: np.ndarray,
          exiting: np.ndarray, caps: CapTables) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Target weights for the candidates, clipped by each cap in priority order."""
    n = cand.shape[0]
    idx = nonzero(cand)
    # np.clip(x, 0.0, None) is np.maximum(x, 0.0) (numpy/_core/_methods.py: _clip)
    w = nan_to_num(np.maximum(row(np.asarray(p.size(env, t), dtype=np.float64), n)[idx], 0.0))
    if p.priority is not None:
        pr = row(np.asarray(p.priority(env, t), dtype=np.float64), n)[idx]
        if _count(np.isfinite(pr)) != pr.size:  # NaN ranks last (inf and -inf become finite)
            pr = np.nan_to_num(pr, nan=-np.inf)
        order = (-pr).argsort(kind="stable")  # np.argsort without its wrapper
        idx, w = idx[order], w[order]
    clipped: dict[str, np.ndarray] = {}

    def mark(cap_type: str, before: np.ndarray, after: np.ndarray) -> None:
        less = after < before - 1e-12
        if any_(less):
            hit = np.zeros(n, dtype=bool)
            hit[idx] = less
            clipped[caps.ids[cap_type]] = hit

    equity = pf.equity if pf.equity > 0 else 0.0
    keep = (pf.qty > 0) & ~exiting
    held_w = np.where(keep, pf.qty * close, 0.0) / equity if equity > 0 else np.zeros(n)
    if caps.asset is not None:
        new = np.minimum(w, caps.asset[idx])
        mark("asset_weight", w, new)
        w = new
    if caps.theme is not None:
        th = p.themes[idx]
        room = caps.theme - np.bincount(p.themes, weights=held_w, minlength=len(caps.theme))
        new = w.copy()
        for code in sorted(set(th.tolist())):  # loop over the candidates' themes only (a handful)
            sel = th == code
            new[sel] = _allocate(w[sel], max(room[code], 0.0))
        mark("theme_weight", w, new)
        w = new
    if caps.total is not None:
        new = _allocate(w, max(caps.total - float(_sum(held_w)), 0.0))
        mark("total_weight", w, new)
        w = new
    if caps.count is not None:
        slots = max(caps.count - _count(keep), 0)
        new = np.where((w > 0).cumsum() <= slots, w, 0.0)
        mark("position_count", w, new)
        w = new
    qty = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        qty[idx] = np.where(close[idx] > 0, w * equity / close[idx], 0.0)
    return qty, clipped


def _round_down(qty: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Quantities rounded down to each product's size increment (never up: no overspend)."""
    out = np.zeros(qty.shape)
    idx = (qty > 0).nonzero()[0]
    if idx.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[idx] = np.floor(qty[idx] / increment[idx] + 1e-9) * increment[idx]
    return out
