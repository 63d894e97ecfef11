"""Every name a rule expression can use, by namespace, with its type and meaning.

This registry is the single source for the compiler's namespaces and for docs/rules.md.
"""
from __future__ import annotations

from engine.rules.expr import BOOL, NUM, STR

# Market columns: per symbol, over the whole history (SERIES level).
MARKET = {
    "open": (NUM, "bar open (forward-filled over missing bars)"),
    "high": (NUM, "bar high"),
    "low": (NUM, "bar low"),
    "close": (NUM, "bar close"),
    "volume": (NUM, "bar volume in base units (0 on a missing bar)"),
    "volume_usd": (NUM, "bar volume x close, in quote currency"),
    "volume_usd_24h": (NUM, "quote volume over the last 24 hours of bars"),
    "spread_bps": (NUM, "quoted bid/ask spread in basis points"),
    "bars_listed": (NUM, "bars since the symbol's first bar (1 on its first bar)"),
    "available": (BOOL, "a bar exists now (not a gap, not before listing)"),
    "theme": (STR, "the product's theme: L1, L2, DeFi, meme, AI, stablecoin, ..."),
    "symbol": (STR, "the product, ccxt unified (BTC/USDC)"),
    "min_notional": (NUM, "the exchange's minimum order value for the product"),
    "regime": (STR, "the regime label of this cycle"),
}

# The regime file reads an index of the market, not single symbols.
INDEX = {
    "close": (NUM, "equal-weight index level of the listed non-excluded products"),
    "volume_usd": (NUM, "total quote volume of those products"),
    "breadth": (NUM, "fraction of those products whose close is above their 50-bar average"),
}

POSITION = {
    "position.held": (BOOL, "a position is open"),
    "position.qty": (NUM, "position size in base units"),
    "position.value": (NUM, "position value at the last close"),
    "position.weight": (NUM, "position value / equity"),
    "position.entry_price": (NUM, "average entry price (NaN when flat)"),
    "position.return_pct": (NUM, "close / entry price - 1 (0 when flat)"),
    "position.bars_held": (NUM, "bars since entry (0 when flat)"),
}

PORTFOLIO = {
    "portfolio.equity": (NUM, "cash + positions at the last close"),
    "portfolio.cash": (NUM, "cash in quote currency"),
    "portfolio.exposure": (NUM, "positions value / equity"),
    "portfolio.n_positions": (NUM, "open positions"),
    "portfolio.drawdown": (NUM, "equity / running peak - 1 (<= 0)"),
    "portfolio.day_return": (NUM, "equity change since the UTC day began"),
    "portfolio.hour_return": (NUM, "equity change over the last hour"),
}

ORDER = {
    "order.notional": (NUM, "absolute order value in quote currency"),
    "order.is_entry": (BOOL, "the order opens a position (false: it reduces or closes one)"),
    "order.est_slippage_bps": (NUM, "estimated slippage: half spread + size impact, bps"),
    "quote_age_s": (NUM, "seconds since the quote was observed (0 in a backtest)"),
}


def types(*groups: dict) -> dict[str, str]:
    return {k: v[0] for g in groups for k, v in g.items()}


# Which namespaces each rule kind sees (series names, cycle names).
KIND_NAMES = {
    "regime": (INDEX, {}),
    "universe": (MARKET, {}),
    "strategy": (MARKET, {**POSITION, **PORTFOLIO}),
    "risk.halts": ({}, PORTFOLIO),
    "risk.vetoes": (MARKET, {**POSITION, **PORTFOLIO}),
    "execution": (MARKET, {**ORDER, **POSITION}),
}
