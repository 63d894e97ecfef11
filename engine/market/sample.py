"""The embedded sample market: a seeded, Coinbase-like year of hourly bars.

The model, in one paragraph (docs/data.md has the long form): a market-wide regime follows a
Markov chain over bull / bear / chop / high_vol with dwell times of days to weeks. Each bar
the market factor draws a fat-tailed (Student-t) log return whose drift and volatility depend
on the regime. A symbol's log return is ``beta * market + theme factor + idiosyncratic``;
stablecoins instead follow a mean-reverting wobble around 1. Volume (base units) and spread
come from a liquidity tier, scaled by the regime and by the size of the bar's move. A couple
of products list part way through and a few single-symbol bars are missing, so consumers meet
NaN the same way they will in real data.

Everything is drawn from one ``numpy.random.Generator(PCG64)`` seeded from ``SampleSpec.seed``
in a fixed order over whole (time x symbol) arrays, so the same spec gives byte-identical
arrays on every run and every CPU: only uniform draws (``rng.random``, ``rng.integers``) are
taken from numpy, and every normal, Student-t, exponential, exp and log goes through
``engine.detmath`` (numpy's SIMD exp/log and the C library's differ between CPUs).
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import detmath
from engine.market.data import TIMEFRAME_MS, MarketData, SymbolInfo

# Bump whenever the generator's output changes for an unchanged spec: it is part of the
# cache key, so stale caches are never read back.
GENERATOR_VERSION = 2  # 2: CPU-independent draws and exp/log (engine.detmath)

REGIMES = ("bull", "bear", "chop", "high_vol")
_HIGH_VOL = REGIMES.index("high_vol")

# Market factor per regime, per day (log returns). Drifts roughly cancel over a year so
# prices stay in realistic ranges; high_vol is short and violent.
_DRIFT_PER_DAY = np.array([0.0045, -0.0045, 0.0, -0.002])
_VOL_PER_DAY = np.array([0.022, 0.028, 0.012, 0.055])
_MEAN_DWELL_DAYS = np.array([18.0, 12.0, 10.0, 4.0])
_MIN_DWELL_DAYS = 2.0
# Where the chain goes when it leaves a regime (rows: from, cols: to; zero diagonal).
_TRANSITIONS = np.array([
    [0.00, 0.25, 0.45, 0.30],  # bull ->
    [0.25, 0.00, 0.40, 0.35],  # bear ->
    [0.45, 0.35, 0.00, 0.20],  # chop ->
    [0.30, 0.40, 0.30, 0.00],  # high_vol ->
])
# How a regime scales idiosyncratic vol, volume and spreads.
_IDIO_MULT = np.array([1.0, 1.2, 0.8, 1.8])
_VOLUME_MULT = np.array([1.1, 1.0, 0.7, 1.9])
_SPREAD_MULT = np.array([1.0, 1.3, 0.9, 2.5])
_THEME_VOL_PER_DAY = 0.012

# Liquidity tiers: median daily volume in quote (USD) and typical spread in bps.
_TIER_DAILY_USD = {1: 8e8, 2: 8e7, 3: 1.2e7, 4: 1.5e6}
_TIER_SPREAD_BPS = {1: 1.6, 2: 4.5, 3: 16.0, 4: 35.0}

THEMES = ("L1", "L2", "DeFi", "meme", "AI", "stablecoin", "exchange_token", "gaming",
          "oracle", "payments")

# base, theme, start price (USD), tier, beta, idiosyncratic annual vol, listing (fraction of
# the sample after which the product starts trading; 0 = listed from the start).
# Ordered by prominence: the first n_symbols are used, so every theme, both stablecoins and
# both late listings are in the first 30.
_CATALOG: tuple[tuple[str, str, float, int, float, float, float], ...] = (
    ("BTC", "L1", 42_000.0, 1, 1.00, 0.20, 0.0),
    ("ETH", "L1", 2_300.0, 1, 1.15, 0.30, 0.0),
    ("USDT", "stablecoin", 1.0, 2, 0.0, 0.0, 0.0),
    ("USDC", "stablecoin", 1.0, 2, 0.0, 0.0, 0.0),  # skipped when it is the quote
    ("SOL", "L1", 100.0, 2, 1.50, 0.55, 0.0),
    ("XRP", "payments", 0.62, 2, 1.10, 0.50, 0.0),
    ("DOGE", "meme", 0.09, 2, 1.60, 0.70, 0.0),
    ("ADA", "L1", 0.60, 2, 1.30, 0.50, 0.0),
    ("AVAX", "L1", 35.0, 2, 1.55, 0.60, 0.0),
    ("LINK", "oracle", 15.0, 2, 1.35, 0.55, 0.0),
    ("DAI", "stablecoin", 1.0, 3, 0.0, 0.0, 0.0),
    ("LTC", "payments", 72.0, 2, 1.05, 0.45, 0.0),
    ("CRO", "exchange_token", 0.095, 3, 1.10, 0.50, 0.0),
    ("ARB", "L2", 1.80, 3, 1.50, 0.65, 0.0),
    ("OP", "L2", 3.50, 3, 1.55, 0.65, 0.0),
    ("UNI", "DeFi", 6.50, 3, 1.35, 0.60, 0.0),
    ("AAVE", "DeFi", 105.0, 3, 1.40, 0.60, 0.0),
    ("FET", "AI", 0.65, 3, 1.70, 0.85, 0.0),
    ("RENDER", "AI", 4.50, 3, 1.70, 0.85, 0.0),
    ("SHIB", "meme", 0.0000105, 3, 1.70, 0.80, 0.0),
    ("PEPE", "meme", 0.0000014, 4, 2.00, 1.10, 0.0),
    ("WIF", "meme", 0.25, 4, 2.10, 1.20, 0.30),
    ("IMX", "gaming", 2.30, 3, 1.55, 0.70, 0.0),
    ("SAND", "gaming", 0.60, 3, 1.40, 0.65, 0.0),
    ("API3", "oracle", 2.50, 4, 1.50, 0.80, 0.0),
    ("XLM", "payments", 0.13, 3, 1.05, 0.50, 0.0),
    ("ONDO", "DeFi", 0.30, 4, 1.60, 0.95, 0.55),
    ("DOT", "L1", 8.00, 2, 1.35, 0.50, 0.0),
    ("GRT", "AI", 0.20, 3, 1.60, 0.75, 0.0),
    ("MATIC", "L2", 0.90, 3, 1.40, 0.60, 0.0),
    ("BONK", "meme", 0.000015, 4, 2.20, 1.25, 0.0),
    ("NEAR", "L1", 3.50, 3, 1.50, 0.65, 0.0),
    ("PYUSD", "stablecoin", 1.0, 4, 0.0, 0.0, 0.0),
    ("MANA", "gaming", 0.48, 3, 1.40, 0.65, 0.0),
    ("AXS", "gaming", 8.00, 4, 1.45, 0.70, 0.0),
    ("MKR", "DeFi", 1_850.0, 3, 1.25, 0.55, 0.0),
    ("BCH", "payments", 250.0, 2, 1.10, 0.50, 0.0),
    ("ATOM", "L1", 10.0, 3, 1.35, 0.55, 0.0),
    ("LDO", "DeFi", 3.00, 3, 1.50, 0.70, 0.0),
    ("BAND", "oracle", 1.50, 4, 1.40, 0.75, 0.0),
    ("ICP", "AI", 12.0, 3, 1.45, 0.70, 0.0),
    ("CRV", "DeFi", 0.60, 3, 1.50, 0.80, 0.0),
    ("COMP", "DeFi", 55.0, 4, 1.35, 0.65, 0.0),
)

KNOWN_THEMES: dict[str, str] = {row[0]: row[1] for row in _CATALOG}
_USD_QUOTES = ("USDC", "USD", "USDT")
_STABLE_NOISE_SD = 4e-4  # stationary sd of a stablecoin's deviation from 1 (4 bps)
_STABLE_PHI = 0.97  # AR(1) persistence of that deviation, per hour
# Volume by hour of day (UTC): 1 + 0.45 * sin(2 pi (hour - 9) / 24), written out to 4 decimals
# so no sine (whose last bit differs between CPUs) is ever computed.
_INTRADAY = np.array([0.6818, 0.6103, 0.5653, 0.55, 0.5653, 0.6103, 0.6818, 0.775, 0.8835, 1.0, 1.1165,
                      1.225, 1.3182, 1.3897, 1.4347, 1.45, 1.4347, 1.3897, 1.3182, 1.225, 1.1165, 1.0,
                      0.8835, 0.775])


def known_theme(base: str) -> str:
    """Theme of a well-known base currency, ``'other'`` otherwise (used for real data)."""
    return KNOWN_THEMES.get(base.upper(), "other")


MIN_BARS = 48  # the bounds of the generator's settings, which the config schema reads too
MIN_SYMBOLS, MAX_SYMBOLS = 30, 2000


class SampleSpecError(ValueError):
    """A sample-market setting (``data.sample.*``) is unknown or out of range."""


@dataclass(frozen=True)
class SampleSpec:
    """Everything that determines the sample market; the cache key hashes all of it."""

    seed: int = 7
    n_symbols: int = 40
    start: str = "2024-01-01"
    n_bars: int = 24 * 366
    timeframe: str = "1h"
    quote: str = "USDC"

    def __post_init__(self) -> None:
        where = "data.sample"
        for name in ("seed", "n_symbols", "n_bars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SampleSpecError(f"{where}.{name}: found {value!r}, expected an integer")
        if self.seed < 0:
            raise SampleSpecError(f"{where}.seed: found {self.seed}, expected an integer >= 0")
        if not MIN_SYMBOLS <= self.n_symbols <= MAX_SYMBOLS:
            raise SampleSpecError(
                f"{where}.n_symbols: found {self.n_symbols}, expected {MIN_SYMBOLS} <= n_symbols <= {MAX_SYMBOLS}")
        if self.n_bars < MIN_BARS:
            raise SampleSpecError(f"{where}.n_bars: found {self.n_bars}, expected at least {MIN_BARS} bars")
        if self.timeframe not in TIMEFRAME_MS:
            raise SampleSpecError(
                f"{where}.timeframe: found {self.timeframe!r}, expected one of {', '.join(TIMEFRAME_MS)}")
        if self.quote not in _USD_QUOTES:
            raise SampleSpecError(
                f"{where}.quote: found {self.quote!r}, expected a USD quote: {', '.join(_USD_QUOTES)}")
        start = self.start_ms  # raises on a bad date
        if start % TIMEFRAME_MS[self.timeframe]:
            raise SampleSpecError(
                f"{where}.start: found {self.start!r}, expected a time on the {self.timeframe} grid")

    @property
    def start_ms(self) -> int:
        if not isinstance(self.start, str) or not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?Z?", self.start):
            raise SampleSpecError(
                f"data.sample.start: found {self.start!r}, expected an ISO-8601 UTC date like '2024-01-01'")
        try:
            return int(np.datetime64(self.start.rstrip("Z").replace(" ", "T"), "ms").astype(np.int64))
        except ValueError:
            raise SampleSpecError(
                f"data.sample.start: found {self.start!r}, expected a valid calendar date") from None

    @classmethod
    def from_mapping(cls, d: Mapping) -> "SampleSpec":
        """Build from a plain mapping (e.g. Hydra's ``data.sample``); unknown keys are errors."""
        if not isinstance(d, Mapping):
            raise SampleSpecError(f"data.sample: found {type(d).__name__}, expected a mapping of settings")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [str(k) for k in d if k not in fields]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, fields, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise SampleSpecError(
                f"data.sample: unknown key(s) {', '.join(hints)}; expected keys: {', '.join(fields)}")
        return cls(**{str(k): v for k, v in d.items()})

    def cache_key(self) -> str:
        """sha256 over every field and the generator version."""
        payload = json.dumps({"generator_version": GENERATOR_VERSION, **dataclasses.asdict(self)},
                             sort_keys=True, default=int)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class _Product:
    base: str
    theme: str
    price: float
    tier: int
    beta: float
    idio_vol: float  # annualised
    listing: float  # fraction of the sample


def _products(spec: SampleSpec, rng: np.random.Generator) -> list[_Product]:
    """The first ``n_symbols`` catalog products, then invented ones if more are needed."""
    rows = [r for r in _CATALOG if r[0] != spec.quote][: spec.n_symbols]
    products = [_Product(*r) for r in rows]
    taken = {p.base for p in products} | {spec.quote}
    themes = [t for t in THEMES if t != "stablecoin"]
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(products) < spec.n_symbols:
        name = "".join(rng.choice(letters, size=int(rng.integers(3, 6))))
        if name in taken:
            continue
        taken.add(name)
        products.append(_Product(
            base=name,
            theme=themes[len(products) % len(themes)],
            price=detmath.power(10.0, detmath.uniform(rng, -3.0, 1.7)),
            tier=4,
            beta=float(detmath.uniform(rng, 1.1, 2.1)),
            idio_vol=float(detmath.uniform(rng, 0.7, 1.3)),
            listing=0.0,
        ))
    return products


def _regime_path(n_bars: int, bars_per_day: float, rng: np.random.Generator) -> np.ndarray:
    """Market regime per bar: a Markov chain with exponential dwell times (min 2 days)."""
    out = np.empty(n_bars, dtype=np.int8)
    state = int(rng.choice(4, p=[0.4, 0.2, 0.3, 0.1]))
    t = 0
    # One iteration per regime spell (tens per year), not per bar.
    while t < n_bars:
        days = max(_MIN_DWELL_DAYS, detmath.exponential(rng, float(_MEAN_DWELL_DAYS[state])))
        n = max(1, int(round(days * bars_per_day)))
        out[t:t + n] = state
        t += n
        state = int(rng.choice(4, p=_TRANSITIONS[state]))
    return out


def _round_to(x: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """Round prices onto each column's tick; monotone, so OHLC ordering survives."""
    return np.maximum(np.round(x / inc) * inc, inc)


def generate_sample_market(spec: SampleSpec = SampleSpec()) -> MarketData:
    """Generate the sample market for ``spec`` (deterministic, byte-for-byte)."""
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    tf_ms = TIMEFRAME_MS[spec.timeframe]
    T = spec.n_bars
    bar_days = tf_ms / 86_400_000
    bars_per_day = 1.0 / bar_days
    times = spec.start_ms + np.arange(T, dtype=np.int64) * tf_ms

    products = _products(spec, rng)
    N = len(products)
    beta = np.array([p.beta for p in products])
    idio_ann = np.array([p.idio_vol for p in products])
    p0 = np.array([p.price for p in products])
    tier = np.array([p.tier for p in products])
    stable = np.array([p.theme == "stablecoin" for p in products])
    theme_names = sorted({p.theme for p in products})
    theme_idx = np.array([theme_names.index(p.theme) for p in products])

    regime = _regime_path(T, bars_per_day, rng)

    # Returns: fat tails via Student-t(4) scaled to unit variance.
    def t4(shape):
        return detmath.student_t4(rng, shape) / math.sqrt(2.0)

    sq = math.sqrt(bar_days)
    market = _DRIFT_PER_DAY[regime] * bar_days + _VOL_PER_DAY[regime] * sq * t4(T)
    theme_f = _THEME_VOL_PER_DAY * sq * t4((T, len(theme_names)))
    eps = t4((T, N))
    idio_bar = idio_ann / math.sqrt(365.0) * sq  # per-bar idiosyncratic sd, calm regime
    idio = eps * idio_bar[None, :] * _IDIO_MULT[regime][:, None]
    rets = beta[None, :] * market[:, None] + theme_f[:, theme_idx] * (~stable)[None, :] + idio
    close = p0[None, :] * detmath.exp(np.cumsum(rets, axis=0))

    # Stablecoins: AR(1) deviation around 1, a little looser in high_vol.
    n_st = int(stable.sum())
    if n_st:
        shock = detmath.standard_normal(rng, (T, n_st)) * (_STABLE_NOISE_SD * math.sqrt(1 - _STABLE_PHI ** 2))
        shock *= np.where(regime == _HIGH_VOL, 2.0, 1.0)[:, None]
        dev = shock  # AR(1) row by row: plain multiply-adds, never fused (scipy's lfilter may be)
        for t in range(1, T):
            dev[t] += _STABLE_PHI * dev[t - 1]
        close[:, stable] = 1.0 + dev

    open_ = np.empty_like(close)
    open_[0] = p0
    open_[1:] = close[:-1]
    # Intrabar excursions beyond the body: half-normal, scaled to the bar's volatility.
    bar_sd = np.sqrt((beta[None, :] * _VOL_PER_DAY[regime][:, None] * sq) ** 2
                     + (idio_bar[None, :] * _IDIO_MULT[regime][:, None]) ** 2)
    bar_sd[:, stable] = _STABLE_NOISE_SD * 0.5
    up = np.abs(detmath.standard_normal(rng, (T, N))) * 0.6 * bar_sd
    down = np.abs(detmath.standard_normal(rng, (T, N))) * 0.6 * bar_sd
    high = np.maximum(open_, close) * detmath.exp(up)
    low = np.minimum(open_, close) * detmath.exp(-down)

    # Ticks like Coinbase's: 4-5 significant digits, never coarser than a cent.
    # (decades computed exactly, one product at a time: a handful of scalars)
    price_inc = np.minimum([detmath.pow10(detmath.exact_decade(p) - 4) for p in p0], 0.01)
    price_inc[stable] = 1e-4
    size_inc = np.clip([detmath.pow10(detmath.exact_decade(1e-3 / p)) for p in p0], 1e-8, 1.0)
    open_, high, low, close = (_round_to(a, price_inc[None, :]) for a in (open_, high, low, close))

    # Volume in base units: tier level x hour-of-day profile x regime x move size x noise.
    daily_usd = np.array([_TIER_DAILY_USD[k] for k in tier])
    hour = (times // 3_600_000) % 24
    intraday = _INTRADAY[hour]  # peaks ~15:00 UTC (US open)
    move = np.abs(eps)
    usd = (daily_usd[None, :] * bar_days * intraday[:, None] * _VOLUME_MULT[regime][:, None]
           * (0.6 + 0.4 * move) * detmath.exp(0.45 * detmath.standard_normal(rng, (T, N)) - 0.5 * 0.45 ** 2))
    volume = usd / close

    base_spread = np.array([_TIER_SPREAD_BPS[k] for k in tier])
    base_spread[stable] = 1.0
    spread = (base_spread[None, :] * _SPREAD_MULT[regime][:, None] * (1.0 + 0.25 * move)
              * detmath.exp(0.3 * detmath.standard_normal(rng, (T, N)) - 0.5 * 0.3 ** 2))
    spread = np.clip(spread, 0.5, 400.0)

    # Holes: late listings (NaN before) and a few missing single-symbol bars.
    missing = np.zeros((T, N), dtype=bool)
    listing_bar = np.array([int(p.listing * T) for p in products])
    missing |= np.arange(T)[:, None] < listing_bar[None, :]
    n_gaps = max(4, T // 1000)
    gap_cols = rng.integers(0, N, size=n_gaps)
    gap_len = rng.integers(1, 4, size=n_gaps)
    lo = listing_bar[gap_cols] + 2
    gap_rows = lo + (rng.random(n_gaps) * (T - 5 - lo)).astype(np.int64)
    for r, c, n in zip(gap_rows, gap_cols, gap_len):  # a handful of cells, not a hot path
        missing[r:r + n, c] = True
    for arr in (open_, high, low, close, volume, spread):
        arr[missing] = np.nan

    logret = np.diff(detmath.log(close), axis=0)
    realised = np.nanstd(logret, axis=0) * math.sqrt(365.0 * bars_per_day)
    info = tuple(
        SymbolInfo(
            symbol=f"{p.base}/{spec.quote}", theme=p.theme,
            price_increment=float(price_inc[i]), size_increment=float(size_inc[i]),
            min_notional=1.0, beta=float(p.beta), volatility=float(round(realised[i], 6)),
        )
        for i, p in enumerate(products)
    )
    order = np.argsort([i.symbol for i in info], kind="stable")
    return MarketData(
        timeframe=spec.timeframe,
        times=times,
        symbols=tuple(info[j].symbol for j in order),
        open=np.ascontiguousarray(open_[:, order]),
        high=np.ascontiguousarray(high[:, order]),
        low=np.ascontiguousarray(low[:, order]),
        close=np.ascontiguousarray(close[:, order]),
        volume=np.ascontiguousarray(volume[:, order]),
        spread_bps=np.ascontiguousarray(spread[:, order]),
        info=tuple(info[j] for j in order),
        source=f"sample:seed={spec.seed}",
        true_regime=regime.astype(np.int64),
        true_regime_labels=REGIMES,
    )


def load_sample_market(spec: SampleSpec, cache_dir: Path | str) -> MarketData:
    """The sample market for ``spec``, generated once and then read from ``cache_dir``."""
    from engine.market.cache import cached_market

    path = Path(cache_dir) / f"sample-{spec.cache_key()[:20]}.npz"
    return cached_market(path, key=spec.cache_key(), build=lambda: generate_sample_market(spec))
