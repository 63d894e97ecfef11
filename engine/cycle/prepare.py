"""Precompute everything that depends on market history only, once per run.

Regime labels, universe filter masks, the cached universe membership and the series-level
entry/exit/veto rules are whole (time x symbol) arrays: each cycle then reads row t.
Rules that read the portfolio or the order are bound to per-cycle closures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from engine.cycle.features import index_series, market_series
from engine.cycle.memory import reuse_freed_memory
from engine.market.coarse import Coarse, resample
from engine.market.data import MarketData
from engine.rules.errors import RuleError
from engine.rules.expr import CYCLE, FeatureStore
from engine.rules.loader import Book, Halt, Rule, RuleSet, check_lock_themes

if TYPE_CHECKING:
    from engine.cycle.shared import SharedFeatures

CycleFn = Callable[[dict, int], Any]


@dataclass
class SeriesRule:
    """A rule whose verdict is a precomputed (T, N) mask (regime scope applied)."""

    rule: Rule
    mask: np.ndarray


@dataclass
class CycleRule:
    """A rule evaluated each cycle; ``regime_ok[t]`` says whether its regime scope holds."""

    rule: Rule
    fn: CycleFn
    regime_ok: np.ndarray | None


@dataclass
class RuleGroup:
    """Rules combined with OR (entries, exits) or AND (vetoes, guards)."""

    series: list[SeriesRule]
    cycle: list[CycleRule]
    combined: np.ndarray  # (T, N): OR/AND of the series rules

    @property
    def rules(self) -> list[Rule]:
        return [s.rule for s in self.series] + [c.rule for c in self.cycle]


@dataclass
class PreparedSleeve:
    """One strategy of a book, prepared: its own entry/exit groups, size and priority."""

    name: str
    entries: RuleGroup
    exits: RuleGroup
    size: CycleFn
    priority: CycleFn | None
    weight: float | None  # fixed share of equity (None: inverse_vol)


@dataclass
class PreparedBook:
    sleeves: tuple[PreparedSleeve, ...]
    allocation: str  # fixed | inverse_vol
    vol: np.ndarray | None  # (T, N) trailing volatility of bar returns (inverse_vol), else None
    book: Book

    def owners(self, entry_rule: list, idx: np.ndarray) -> np.ndarray:
        """The sleeve index of the positions (or candidates) ``idx`` from the rule that opened them."""
        return np.array([self.book.owner_of(entry_rule[i]) for i in idx.tolist()], dtype=np.int64)


@dataclass
class Prepared:
    market: MarketData
    rules: RuleSet
    store: FeatureStore
    available: np.ndarray  # (T, N) a bar exists
    close: np.ndarray  # (T, N) forward-filled
    regime_labels: tuple[str, ...]
    regime_idx: np.ndarray  # (T,) index into regime_labels
    regime_masks: dict[str, np.ndarray]  # rule id -> (T,) bool
    filter_masks: dict[str, np.ndarray]  # universe rule id -> (T, N) bool (scope applied)
    eligible: np.ndarray  # (T, N) all filters pass
    universe: np.ndarray  # (T, N) membership after ranking and caching
    rebuilds: np.ndarray  # (T,) bool: universe rebuilt at t
    entries: RuleGroup
    exits: RuleGroup
    vetoes: RuleGroup
    size: CycleFn
    priority: CycleFn | None
    halts: list[tuple[Halt, CycleFn]]
    guards: RuleGroup
    themes: np.ndarray  # (N,) theme codes
    theme_names: tuple[str, ...]
    size_increment: np.ndarray  # (N,)
    extra: dict = field(default_factory=dict)
    book: PreparedBook | None = None  # several strategies in one account (rules.book)

    @property
    def n_rebuilds(self) -> int:
        return int(self.rebuilds.sum())


def check_regime_index(rules: RuleSet, market: MarketData) -> None:
    """Refuse an index that excludes every product's theme: it used to fall back silently to all
    products, so a regime read an index the rule file had excluded."""
    themes = sorted({i.theme for i in market.info})
    excluded = rules.regime.exclude_themes
    if themes and all(t in excluded for t in themes):
        raise RuleError(rules.regime.exclude_where,
                        f"index.exclude_themes [{', '.join(excluded)}] excludes the theme of every product in the "
                        f"data ({', '.join(themes)}): the regime index would follow no product",
                        expected="at least one theme of the data left in the index (exclude fewer themes)")


class _Timeframes:
    """The coarser panels a run's rules read (``on("1d", ...)``, a file's ``timeframe:``), each
    resampled from the base bars once and shared by the market and index stores."""

    def __init__(self, market: MarketData):
        self.market = market
        self._built: dict[str, Coarse] = {}

    def coarse(self, timeframe: str) -> Coarse:
        if timeframe not in self._built:
            self._built[timeframe] = resample(self.market, timeframe)  # ValueError: not coarser
        return self._built[timeframe]

    def market_store(self, timeframe: str) -> tuple[FeatureStore, np.ndarray]:
        c = self.coarse(timeframe)
        shape = (c.market.n_bars, c.market.n_symbols)
        return FeatureStore(market_series(c.market), shape), c.closed

    def index_store(self, exclude_themes: tuple[str, ...]):
        def build(timeframe: str) -> tuple[FeatureStore, np.ndarray]:
            c = self.coarse(timeframe)
            close = market_series(c.market)["close"]
            return FeatureStore(index_series(c.market, close, exclude_themes), (c.market.n_bars, 1)), c.closed
        return build


def _regimes(rules: RuleSet, market: MarketData, base: dict[str, np.ndarray], frames: _Timeframes):
    check_regime_index(rules, market)
    idx = index_series(market, base["close"], rules.regime.exclude_themes)
    t = market.n_bars
    store = FeatureStore(idx, (t, 1), coarser=frames.index_store(rules.regime.exclude_themes))
    return regime_labels(rules, store, t)


def regime_labels(rules: RuleSet, store: FeatureStore, t: int):
    """(labels, (t,) label index per bar, rule id -> (t,) mask): the first regime rule that holds
    names the bar, else the default."""
    labels = rules.regime.labels
    out = np.full(t, labels.index(rules.regime.default), dtype=np.int16)
    decided = np.zeros(t, dtype=bool)
    masks = {}
    for r in rules.regime.rules:
        m = np.asarray(r.when.series(store), dtype=bool)[:, 0]
        masks[r.id] = m
        out[m & ~decided] = labels.index(r.id)
        decided |= m
    return labels, out, masks


def _scope(rule: Rule, labels: tuple[str, ...], regime_idx: np.ndarray) -> np.ndarray | None:
    if not rule.regimes:
        return None
    codes = [labels.index(r) for r in rule.regimes]
    return np.isin(regime_idx, codes)


def _group(rules: list[Rule], store: FeatureStore, labels, regime_idx, combine: str, shape) -> RuleGroup:
    series, cycle = [], []
    combined = np.zeros(shape, dtype=bool) if combine == "or" else np.ones(shape, dtype=bool)
    for r in rules:
        scope = _scope(r, labels, regime_idx)
        if r.when.level == CYCLE:
            cycle.append(CycleRule(r, r.when.bind(store), scope))
            continue
        m = np.asarray(r.when.series(store), dtype=bool)
        if scope is not None:
            # outside its regimes a rule does not apply: an OR-rule is false, an AND-rule passes
            m = m & scope[:, None] if combine == "or" else m | ~scope[:, None]
        series.append(SeriesRule(r, m))
        combined = combined | m if combine == "or" else combined & m
    return RuleGroup(series, cycle, combined)


def select_members(u, ok: np.ndarray, key_row: np.ndarray | None) -> np.ndarray:
    """One rebuild of the universe: the eligible symbols, cut to the ``u.top`` best by
    ``key_row`` (or the first ``u.top`` in symbol order when the universe is not ranked)."""
    if ok.sum() <= u.top:
        return ok
    if key_row is None:
        return ok & (np.cumsum(ok) <= u.top)
    # eligible symbols with a rank value first (best first, ties in symbol order), then the
    # eligible ones without one, so every slot goes to an eligible symbol while any is left
    has_key = ~np.isnan(key_row)
    cls = np.where(ok, np.where(has_key, 0, 1), 2)
    k = np.where(has_key, key_row, 0.0)
    order = np.lexsort((-k if u.descending else k, cls))
    current = np.zeros(ok.shape[0], dtype=bool)
    current[order[: u.top]] = True
    return current & ok


def _rule_key(r: Rule) -> tuple:
    return r.id, r.when.key, None if r.regimes is None else tuple(r.regimes)


def _regime_key(rules: RuleSet) -> tuple:
    """What the regime labelling is computed from (the market aside): the index's excluded themes
    and each regime rule's canonical text, in file order."""
    g = rules.regime
    return ("regimes", tuple(g.exclude_themes), g.default, g.timeframe, tuple(_rule_key(r) for r in g.rules))


def _universe_key(rules: RuleSet) -> tuple:
    """What the universe is computed from (the market and the regime labelling aside)."""
    u = rules.universe
    return (tuple(_rule_key(r) for r in u.filters), None if u.rank_by is None else u.rank_by.key, u.descending,
            u.top, u.ttl_ms, u.rebuild_on_regime_change)


@dataclass
class UniverseCarry:
    """The universe's rebuild state after the rows seen so far (a chunked run carries it over
    chunk borders; a whole run starts from a fresh one)."""

    members: np.ndarray | None = None  # (N,) the members of the last rebuild (None: no rebuild yet)
    deadline: int = 0  # epoch ms at which the TTL of the last rebuild runs out
    regime: int | None = None  # the last row's regime code


def universe_members(u, times: np.ndarray, key: np.ndarray | None, eligible: np.ndarray, regime_idx: np.ndarray,
                     carry: UniverseCarry) -> tuple[np.ndarray, np.ndarray]:
    """(membership per row, the rows that rebuilt it): rebuilt at the run's first row, then when
    the TTL runs out on the run's clock or (optionally) the regime changes; ``carry`` is the state
    before these rows, and is advanced past them."""
    t_n, n = eligible.shape
    member = np.zeros((t_n, n), dtype=bool)
    rebuilds = np.zeros(t_n, dtype=bool)
    changes = None
    if u.rebuild_on_regime_change and t_n:
        prev = np.concatenate(([regime_idx[0] if carry.regime is None else carry.regime], regime_idx[:-1]))
        changes = np.flatnonzero(regime_idx != prev)

    def next_after(r: int, deadline: int) -> int:
        # a rebuild holds until the TTL runs out or the regime changes: jump from one rebuild to
        # the next instead of testing every bar
        nxt = max(r + 1, int(np.searchsorted(times, deadline, side="left")))
        if changes is not None:
            k = int(np.searchsorted(changes, r, side="right"))
            if k < changes.size:
                nxt = min(nxt, int(changes[k]))
        return nxt

    # the first rebuild: the run's first row, else where the carried TTL runs out or the regime
    # changes (-1: the last rebuild was before these rows)
    r = 0 if carry.members is None else next_after(-1, carry.deadline)
    if carry.members is not None:
        member[:r] = carry.members
    while r < t_n:
        current = select_members(u, eligible[r], None if key is None else key[r])
        rebuilds[r] = True
        # a copy: select_members may return a row of ``eligible``, which would keep a chunk's
        # whole panel alive into the next chunk
        carry.members, carry.deadline = current.copy(), int(times[r]) + u.ttl_ms
        nxt = next_after(r, carry.deadline)
        member[r:nxt] = current
        r = nxt
    carry.regime = int(regime_idx[-1]) if t_n else carry.regime
    return member, rebuilds


def rank_key(u, store) -> np.ndarray | None:
    return None if u.rank_by is None else np.asarray(u.rank_by.series(store), dtype=np.float64)


def prepare(market: MarketData, rules: RuleSet, shared: "SharedFeatures | None" = None) -> Prepared:
    """``shared``: features already computed over this market by other rule sets (a sweep's
    earlier jobs, a walk-forward's other grid points; engine/cycle/shared.py), reused and added to."""
    with reuse_freed_memory():  # dozens of big temporaries: see engine/cycle/memory.py
        return _prepare(market, rules, shared)


def _prepare(market: MarketData, rules: RuleSet, shared: "SharedFeatures | None" = None) -> Prepared:
    if shared is not None and shared.market is not market:
        raise ValueError("prepare: the shared features belong to another market")
    base = market_series(market) if shared is None else shared.base
    shape = (market.n_bars, market.n_symbols)
    frames = _Timeframes(market)
    if shared is None:
        labels, regime_idx, regime_masks = _regimes(rules, market, base, frames)
    else:
        check_regime_index(rules, market)
        labels, regime_idx, regime_masks = shared.memo(_regime_key(rules), lambda: _regimes(rules, market, base,
                                                                                             frames))
        regime_masks = dict(regime_masks)
    label_arr = np.array(labels)[regime_idx]
    regime = np.broadcast_to(label_arr[:, None], shape)
    if shared is None:
        base["regime"] = regime
    else:
        base = shared.layer(labels, regime_idx, regime)
    store = FeatureStore(base, shape, coarser=frames.market_store)

    def universe_of():
        filters = _group(rules.universe.filters, store, labels, regime_idx, "and", shape)
        eligible = filters.combined & ~np.isnan(base["close"])
        u = rules.universe
        return ({s.rule.id: s.mask for s in filters.series}, eligible,
                *universe_members(u, market.times, rank_key(u, store), eligible, regime_idx, UniverseCarry()))
    if shared is None:
        filter_masks, eligible, universe, rebuilds = universe_of()
    else:  # one universe per layer (regime labelling) and universe file
        filter_masks, eligible, universe, rebuilds = shared.memo(("universe", id(base), *_universe_key(rules)),
                                                                 universe_of)
        filter_masks = dict(filter_masks)

    s = rules.strategy
    entries = _group(s.entries, store, labels, regime_idx, "or", shape)
    exits = _group(s.exits, store, labels, regime_idx, "or", shape)
    vetoes = _group(rules.risk.vetoes, store, labels, regime_idx, "and", shape)
    guards = _group(rules.execution.guards, store, labels, regime_idx, "and", shape)
    halts = [(h, h.rule.when.bind(store)) for h in rules.risk.halts]

    book = prepare_book(rules, store, labels, regime_idx, shape) if rules.book is not None else None
    theme_names = tuple(sorted({i.theme for i in market.info}))
    check_lock_themes(rules, theme_names)
    themes = np.array([theme_names.index(i.theme) for i in market.info], dtype=np.int64)
    return Prepared(
        market=market, rules=rules, store=store, available=base["available"], close=base["close"],
        regime_labels=labels, regime_idx=regime_idx, regime_masks=regime_masks,
        filter_masks=filter_masks, eligible=eligible, universe=universe, rebuilds=rebuilds,
        entries=entries, exits=exits, vetoes=vetoes,
        size=s.size.bind(store), priority=s.priority.bind(store) if s.priority is not None else None,
        halts=halts, guards=guards, themes=themes, theme_names=theme_names,
        size_increment=np.array([i.size_increment for i in market.info], dtype=np.float64), book=book,
    )


def prepare_book(rules: RuleSet, store: FeatureStore, labels, regime_idx, shape) -> PreparedBook:
    """Each strategy of the book with its own groups (the union groups in ``Prepared.entries`` /
    ``exits`` are what the trace and the quiet-bar scan read); the trailing volatility that an
    inverse-volatility book divides by."""
    b = rules.book
    sleeves = []
    for sl in b.sleeves:
        st = sl.strategy
        sleeves.append(PreparedSleeve(
            sl.name, _group(st.entries, store, labels, regime_idx, "or", shape),
            _group(st.exits, store, labels, regime_idx, "or", shape), st.size.bind(store),
            st.priority.bind(store) if st.priority is not None else None, sl.weight))
    vol = None
    if b.allocation == "inverse_vol":
        with np.errstate(divide="ignore", invalid="ignore"):
            r = store.call("book:pct_change(close, 1)", "pct_change", store.arrays["close"], 1)
            vol = store.call(f"book:std(pct_change(close, 1), {b.vol_window})", "std", r, b.vol_window)
    return PreparedBook(tuple(sleeves), b.allocation, vol, b)
