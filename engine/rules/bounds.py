"""The bounds of every duration and count that config and rule files give: one source for each.

The config schema (engine/config/schema.py) and the rule loader both read these, so mode=validate
and a run refuse the same values with the same bound in the message.
"""
from __future__ import annotations

from engine.rules.expr import _MAX_WINDOW

MAX_WINDOW_BARS = _MAX_WINDOW  # a time-series window (sma(close, n), params.fast, ...)
MAX_COUNT_BARS = _MAX_WINDOW  # a count of bars: halt cooldowns, history, rank.top
MAX_TTL_MS = 520 * 604_800_000  # the universe cache TTL: 520w (about 10 years)
MAX_TTL_TEXT = "520w"
MAX_OFFSET_BPS = 1000  # a limit order's offset from the reference price
