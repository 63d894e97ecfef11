"""Cerberus schemas for every config group and for the composed config, and the pass that turns
Cerberus' error tree into ConfigProblems with full key paths, found/expected and did-you-mean.

Conventions: unknown keys are rejected everywhere except rule `params` (the rule loader checks
those names against the rule file; here only the known params' types and ranges are checked).
Cross-field coherence (theme caps vs total, daily vs hourly...) is not here: see sanity_checks.yaml.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any

from cerberus import TypeDefinition, Validator, errors

from engine.live.settings import CLOCKS
from engine.market.data import TIMEFRAME_MS
from engine.market.products import THEME_RE
from engine.market.sample import MAX_SYMBOLS as SAMPLE_MAX_SYMBOLS, MIN_BARS as SAMPLE_MIN_BARS
from engine.market.sample import MIN_SYMBOLS as SAMPLE_MIN_SYMBOLS
from engine.rules.bounds import MAX_COUNT_BARS, MAX_WINDOW_BARS
from engine.validators import validator

from . import paths
from .problems import ConfigProblem
from .secrets import is_env_name_key, is_secret_path

MODES = ("backtest", "dry_run", "paper", "live", "validate", "explain", "shadow", "walkforward", "grid")
# Modes with requirements of their own (mode=validate/explain may check one as mode.target).
RUN_MODES = ("backtest", "dry_run", "paper", "live", "shadow", "walkforward", "grid")
LIVE_CLOCK_MODES = ("dry_run", "paper", "live")
DATA_SOURCES = ("sample", "csv", "parquet", "freqtrade", "store")
SYMBOL_RE = r"^[A-Z0-9]{1,20}/[A-Z0-9]{2,10}$"
DATE_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?$"
# live.end_time is read with numpy (engine.live.settings.end_ms), which has no time zones: UTC only.
UTC_TIME_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?)?Z?$"
CURRENCY_RE = r"^[A-Z0-9]{2,10}$"
MAX_INT = 2**63 - 1  # the default upper bound of an integer: numpy's int64
MAX_AMOUNT = 10**15  # money (cash, notional, volume thresholds): far above any account, far below overflow

# --- building blocks (each carries a human 'meta' description used in "expected") ------------


def _num(lo: float | None = None, hi: float | None = None, *, gt: float | None = None, **kw) -> dict:
    # Every number is finite (NaN and infinity pass every comparison) unless the key says finite=False.
    d: dict[str, Any] = {"type": "number", "finite": True, **kw}
    if lo is not None:
        d["min"] = lo
    if hi is not None:
        d["max"] = hi
    if gt is not None:
        d["gt"] = gt
    return d


def _int(lo: int | None = None, hi: int | None = None, **kw) -> dict:
    # A count without its own bound still fits an int64 (numpy reads every count as one).
    d: dict[str, Any] = {"type": "integer", **kw}
    if hi is None:
        hi = MAX_INT
    if lo is not None:
        d["min"] = lo
    if hi is not None:
        d["max"] = hi
    return d


def FRACTION(**kw) -> dict:  # a share of equity in [0, 1]
    return _num(0, 1, **kw)


def POS_FRACTION(**kw) -> dict:  # a share of equity in (0, 1]
    return _num(None, 1, gt=0, **kw)


def _str(**kw) -> dict:
    return {"type": "string", **kw}


def _dict(schema: dict, **kw) -> dict:
    return {"type": "dict", "schema": schema, **kw}


ENV_NAME_FIELD = {"type": "string", "nullable": True}  # the value's shape is checked by secrets.py
SYMBOL = _str(regex=SYMBOL_RE, meta="a ccxt unified symbol like 'BTC/USDC'")
DATE = _str(regex=DATE_RE, utc_time=True, nullable=True, meta="an ISO date like '2024-01-01' (UTC) or null")
RULE_FILE = _str(required=True, empty=False, regex=r"^[^\s]+\.ya?ml$", meta="a .yaml file under rules_dir")

# --- one schema per config group ---------------------------------------------------------------

MODE = {
    "name": _str(required=True, allowed=list(MODES)),
    # mode=validate / explain may say which run mode's requirements to check (e.g. target=live).
    "target": _str(nullable=True, allowed=list(RUN_MODES)),
    # mode=shadow / explain: the live-clock account whose state file they read
    "state": _str(nullable=True, allowed=list(LIVE_CLOCK_MODES)),
}

FEE_TIER = _dict({
    "min_volume_usd": _num(0, MAX_AMOUNT, required=True),
    "maker_bps": _num(0, 1000, required=True),
    "taker_bps": _num(0, 1000, required=True),
})

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
HTTP_URL = _str(nullable=True, regex=r"^https?://\S+$", meta="an http(s) URL or null")

EXCHANGE = {
    "name": _str(required=True, empty=False),
    # null: no exchange client (a backtest needs only the fees); dry_run/paper/live need one.
    "ccxt_id": _str(required=True, nullable=True, regex=r"^[a-z][a-z0-9_]*$", meta="a ccxt exchange id like 'coinbase'"),
    "quote": _str(regex=r"^[A-Z0-9]{2,10}$", meta="a quote currency code like 'USDC'"),
    "api_key_env": ENV_NAME_FIELD,
    "api_secret_env": ENV_NAME_FIELD,
    "api_passphrase_env": ENV_NAME_FIELD,
    # Fees are required by the simulated broker (backtest, paper): see sanity check simulated_broker_needs_fees.
    "fees": _dict({"tiers": {"type": "list", "minlength": 1, "schema": FEE_TIER, "required": True}}, nullable=True),
    # --- the exchange layer (engine/exchange): client, rate budgets, retries, order recovery, emulator
    "rest_url": HTTP_URL,
    "timeout_ms": _int(1, 600_000),
    "ccxt_log_level": _str(allowed=LOG_LEVELS),
    "rate_limits": _dict({
        "pools": {"type": "dict", "keysrules": _str(regex=r"^[a-z][a-z0-9_]*$", meta="a pool name like 'public'"),
                  "valuesrules": _dict({
                      "limit_per_s": _num(gt=0, required=True), "burst_s": _num(gt=0),
                      "kind": _str(allowed=["window", "decay"]), "max_count": _num(gt=0, nullable=True),
                      "apis": {"type": "list", "nullable": True, "schema": _str(empty=False)},
                      "endpoints": {"type": "dict", "nullable": True, "keysrules": _str(), "valuesrules": _num(0)},
                      "ccxt_cost_scale": _num(gt=0, nullable=True), "per_param": _str(nullable=True, empty=False),
                      "used_header": _str(nullable=True, empty=False)})},
        "safety_margin": _num(0, 0.9),
        "alert_threshold": _num(None, 1, gt=0),
        "endpoint_costs": {"type": "dict", "keysrules": _str(), "valuesrules": _num(gt=0)},
        "learn_from_headers": {"type": "boolean"},
        "limited_markers": {"type": "dict", "keysrules": _str(empty=False), "valuesrules": _str(empty=False)},
        "pause_on_limited_s": _num(0, 3600),
    }),
    # how the exchange takes our idempotent client order id (engine/exchange/config.py ClientIdConfig)
    "client_id": _dict({
        "param": _str(empty=False),
        "style": _str(allowed=["prefixed", "uuid"]),
        "unique": _str(allowed=["always", "open"]),
    }),
    "ccxt_options": {"type": "dict"},
    # which protection order types the venue takes (engine/exchange/types.py PROTECTION_ORDER_TYPES)
    "protection_orders": {"type": "list", "schema": _str(allowed=["stop_limit", "stop_market", "take_profit"])},
    "stop_limit_offset_bps": _num(0, 5_000),
    "retry": _dict({
        "max_attempts": _int(1, 50),
        "base_delay_s": _num(0, 600),
        "max_delay_s": _num(0, 3600),
        "jitter": _num(0, 1),
        "seed": _int(0),
    }),
    "orders": _dict({
        "confirm_after_create": {"type": "boolean"},
        "recovery_lookback_s": _num(gt=0),
        "recovery_attempts": _int(0, 100),
    }),
    "emulator": _dict({
        "autostart": {"type": "boolean"},
        "host": _str(empty=False),
        "port": _int(0, 65535),
        "seed": _int(0),
        "speed": _num(gt=0, nullable=True),  # null: step mode (moved by live.clock=step)
        "products": _int(1),
        "quote_currency": _str(regex=r"^[A-Z0-9]{2,10}$", meta="a currency code like 'USDC'"),
        "starting_balance": _num(None, MAX_AMOUNT, gt=0),
        "enforce_rate_limits": {"type": "boolean"},
    }, nullable=True),
}

DATA = {
    "source": _str(required=True, allowed=list(DATA_SOURCES)),
    "timeframe": _str(required=True, allowed=list(TIMEFRAME_MS)),
    "path": _str(nullable=True, empty=False),
    "symbols": {"type": "list", "nullable": True, "minlength": 1, "schema": SYMBOL},
    "cache_dir": _str(nullable=True, empty=False),
    "default_spread_bps": _num(0, 10_000),
    # refuse a run whose estimated peak memory is above this (null: what the machine has free)
    "max_memory_gib": _num(nullable=True, gt=0, hi=1e6),
    "sample": _dict({
        "seed": _int(0, required=True),
        "n_symbols": _int(SAMPLE_MIN_SYMBOLS, SAMPLE_MAX_SYMBOLS, required=True),
        "start": _str(regex=DATE_RE, required=True, meta="an ISO date like '2024-01-01'"),
        "n_bars": _int(SAMPLE_MIN_BARS, 10_000_000, required=True),
    }, nullable=True),
}

# A param the rule file declares but this schema does not know: any type, but a number is finite
# (the rule loader refuses NaN and infinity in every param; validate says so too).
UNKNOWN_PARAM = {"finite": True}

STRATEGY_PARAMS = {
    "fast": _int(1, MAX_WINDOW_BARS),
    "slow": _int(1, MAX_WINDOW_BARS),
    "lookback": _int(1, MAX_WINDOW_BARS),
    "entry_return": _num(-1, 100),
    "exit_return": _num(-1, 100),
    "rsi_max": _num(0, 100),
    "weight": POS_FRACTION(),
    "stop_loss": _num(None, 1, gt=0),
}
STRATEGY = {
    "name": _str(required=True, regex=r"^[a-z][a-z0-9_]*$", meta="a snake_case strategy name"),
    "file": RULE_FILE,
    "params": _dict(STRATEGY_PARAMS, allow_unknown=UNKNOWN_PARAM, required=True),
}

REGIME_PARAMS = {
    "fast": _int(1, MAX_WINDOW_BARS),
    "slow": _int(1, MAX_WINDOW_BARS),
    "vol_window": _int(2, MAX_WINDOW_BARS),
    "high_vol": _num(gt=0),
}
REGIME = {"file": RULE_FILE, "params": _dict(REGIME_PARAMS, allow_unknown=True, required=True)}

# Several strategies in one account (conf/book; engine/rules/loader.py checks the files and params).
BOOK_STRATEGY = {
    "file": RULE_FILE,
    "weight": _num(None, 1, gt=0, nullable=True, meta="a share of equity in (0, 1] (allocation: fixed)"),
    "params": {"type": "dict"},
}
BOOK = {
    "allocation": _str(allowed=["fixed", "inverse_vol"]),
    "vol_window": _int(2, MAX_WINDOW_BARS),
    "strategies": {"type": "dict", "required": True, "empty": False,
                   "keysrules": _str(regex=r"^[a-z][a-z0-9_]*$", meta="a snake_case strategy name"),
                   "valuesrules": _dict(BOOK_STRATEGY)},
}

UNIVERSE_PARAMS = {
    "min_volume_usd": _num(0, MAX_AMOUNT),
    "max_spread_bps": _num(None, 10_000, gt=0),
    "min_history_bars": _int(0, MAX_WINDOW_BARS),
    "top": _int(1, MAX_COUNT_BARS),
}
UNIVERSE = {"file": RULE_FILE, "params": _dict(UNIVERSE_PARAMS, allow_unknown=UNKNOWN_PARAM, required=True)}

RISK_PARAMS = {
    "max_position_weight": POS_FRACTION(),
    # Above 1 is leverage: the schema allows any positive number so that the sanity check
    # spot_no_leverage can say why it is refused.
    "max_total_exposure": _num(gt=0),
    "max_positions": _int(1),
    # theme -> cap; themes as the product table spells them (L1, DeFi, meme); 'default' caps the
    # themes not listed and is required (the risk file's theme_weight cap reads it)
    "theme_caps": {"type": "dict", "keysrules": _str(regex=THEME_RE, meta="a theme name like 'meme' or 'DeFi'"),
                   "valuesrules": FRACTION(), "schema": {"default": FRACTION(required=True)}, "allow_unknown": True},
    "asset_caps": {"type": "dict", "keysrules": SYMBOL, "valuesrules": FRACTION()},
    "hourly_loss_limit": POS_FRACTION(),
    "daily_loss_limit": POS_FRACTION(),
    "max_drawdown_halt": POS_FRACTION(),
    "cooldown_bars": _int(1, MAX_COUNT_BARS),
}
# The burn-in period lives in live.burn_in (what the live loop enforces); risk.burn_in was removed.
RISK = {
    "file": RULE_FILE,
    "params": _dict(RISK_PARAMS, allow_unknown=UNKNOWN_PARAM, required=True),
}

EXECUTION_PARAMS = {
    "min_notional": _num(0, MAX_AMOUNT),
    "max_spread_bps": _num(None, 10_000, gt=0),
    "max_slippage_bps": _num(None, 10_000, gt=0),
    "quote_max_age_s": _num(gt=0),
}
EXECUTION = {"file": RULE_FILE, "params": _dict(EXECUTION_PARAMS, allow_unknown=UNKNOWN_PARAM, required=True)}

BACKTEST = {
    "initial_cash": _num(None, MAX_AMOUNT, gt=0, required=True),
    "start": DATE,
    "end": DATE,
    "max_participation": _num(hi=1, gt=0),
    "close_at_end": {"type": "boolean"},
    "chunked": {"type": ["boolean", "string"], "allowed": ["auto", True, False]},
    "slippage": _dict({
        "model": _str(required=True, allowed=["spread_impact", "none"]),
        "impact_coef": _num(0, 100),
        "noise_bps": _num(0, 1000),
    }),
}

# The live-clock loop (mode=dry_run|paper|live, and shadow's state file): names, types and ranges
# of engine.live.settings.LiveSettings / BurnIn. No key is required: the loop has a default for
# each; what a mode needs is a sanity check (live_clock_needs_a_limit, live_needs_burn_in...).
LIVE_BURN_IN = {
    "cycles": _int(0),  # the first N live cycles of the account run with reduced caps ...
    "days": _num(0),  # ... or the first N days, whichever lasts longer
    "cap_scale": _num(None, 1, gt=0, meta="a fraction in (0, 1]"),
    "max_order_notional": _num(None, MAX_AMOUNT, gt=0),
    "require_paper": {"type": "boolean"},
    "min_paper_cycles": _int(1),
    "min_paper_hours": _num(0),  # wall-clock length of that paper session
}
ENV_VAR = _str(regex=r"^[A-Za-z_][A-Za-z0-9_]*$", nullable=True,
               meta="the NAME of an environment variable (secrets never go in a config file)")
LIVE_NOTIFY_CHANNEL = {
    "name": _str(empty=False),
    "type": _str(required=True, allowed=["webhook", "telegram", "slack", "discord"]),
    "url_env": ENV_VAR, "token_env": ENV_VAR, "chat_id_env": ENV_VAR,
    "api_url": _str(regex=r"^https?://", meta="an http(s) URL"),
    "events": {"type": "list", "schema": _str(allowed=["fill", "error", "warning", "halt", "reload", "burn_in", "kill"])},
    "min_level": _str(allowed=["info", "warning", "error"]),
}
# alerts to people (engine/live/notify/settings.py, docs/console.md)
LIVE_NOTIFY = {
    "channels": {"type": "list", "nullable": True, "schema": _dict(LIVE_NOTIFY_CHANNEL)},
    "rate_per_minute": _int(1),
    "dedup_s": _num(0),
    "max_attempts": _int(1),
    "retry_base_s": _num(0),
    "retry_max_s": _num(0),
    "timeout_s": _num(gt=0),
    "poll_s": _num(gt=0),
    "drain_s": _num(0),
}
LIVE = {
    "account": _str(regex=r"^[A-Za-z0-9_-]+$", meta="letters, digits, '-' or '_' (it names the state file)"),
    "state_dir": _str(empty=False),
    "max_cycles": _int(1, nullable=True),
    "end_time": _str(regex=UTC_TIME_RE, utc_time=True, nullable=True,
                     meta="an ISO-8601 UTC time like '2024-03-01T12:00' (or null)"),
    "timeframe": _str(allowed=list(TIMEFRAME_MS), nullable=True),
    "symbols": {"type": "list", "nullable": True, "schema": SYMBOL},
    "quote_currency": _str(regex=CURRENCY_RE, meta="a quote currency code like 'USDC'"),
    "max_symbols": _int(1),
    "history_bars": _int(2, MAX_WINDOW_BARS),
    "initial_cash": _num(None, MAX_AMOUNT, gt=0, nullable=True),
    "clock": _str(allowed=list(CLOCKS)),
    "sim_speed": _num(gt=0, nullable=True),
    "sim_origin_ms": _int(0, nullable=True),
    "sim_origin_wall_s": _num(0, nullable=True),
    "settle_s": _num(0, 3600),
    "max_quote_age_s": _num(gt=0),
    "open_orders_on_start": _str(allowed=["cancel", "keep"]),
    "resend_max_age_bars": _int(0, MAX_COUNT_BARS),
    "kill_switch_file": _str(empty=False, nullable=True),
    "shadow_catch_up": {"type": "boolean"},
    # null: the loop's defaults; live mode requires the section (sanity check live_needs_burn_in)
    "burn_in": _dict(LIVE_BURN_IN, nullable=True),
    "notify": _dict(LIVE_NOTIFY, nullable=True),
}

# mode=walkforward (engine/research/folds.py, walkforward.py): lengths are bars or "<n>h|d|w".
LENGTH = {"type": ["integer", "string"], "regex": r"^\d+\s*[hdw]$", "min": 1,
          "meta": "a number of bars (720) or hours/days/weeks like '36h', '30d', '2w'"}
WALKFORWARD = {
    "scheme": _str(required=True, allowed=["rolling", "anchored"]),
    "train": {**LENGTH, "required": True},
    "test": {**LENGTH, "required": True},
    "purge": {**LENGTH, "min": 0},
    "search": _str(allowed=["grid", "optuna"]),
    # search: optuna: the asks of each fold's study (its default: conf/walkforward/default.yaml)
    "n_trials": _int(1, 10_000),
    "objective": _str(empty=False),
    "direction": _str(allowed=["maximize", "minimize"]),
    "min_trades": _int(0),
    "pbo_blocks": _int(2, 32),
    "grid": {"type": "dict", "required": True, "empty": False},
    "warn": _dict({"oos_sharpe_fraction": _num(), "pbo": FRACTION()}),
}

SEARCH = {"grid": {"type": "dict", "required": True, "empty": False}, "workers": _int(1, 64)}

REPORT = {"html": {"type": "boolean"}, "csv": {"type": "boolean"},
          "max_chart_points": _int(100, 100_000),
          "max_table_rows": _int(1, 1_000_000)}

GROUP_SCHEMAS: dict[str, dict] = {
    "mode": MODE, "exchange": EXCHANGE, "data": DATA, "regime": REGIME, "strategy": STRATEGY, "book": BOOK, "universe": UNIVERSE,
    "risk": RISK, "execution": EXECUTION, "backtest": BACKTEST, "report": REPORT, "live": LIVE,
    "walkforward": WALKFORWARD, "search": SEARCH,
}
# Groups a composed config may lack (a backtest never reads `live`; the live-clock modes require it
# through the sanity check live_clock_needs_live_group).
OPTIONAL_GROUPS = frozenset({"live", "book", "walkforward", "search"})

COMPOSED: dict[str, dict] = {
    **{name: _dict(schema, required=name not in OPTIONAL_GROUPS) for name, schema in GROUP_SCHEMAS.items()},
    "seed": _int(0, 2**32 - 1, required=True),
    "rules_dir": _str(required=True, empty=False),
    "product_facts": _str(nullable=True, empty=False, regex=r"^[^\s]+\.ya?ml$",
                          meta="a .yaml product table under rules_dir (or absolute), or null"),
    "explain": _dict({
        "run_dir": _str(nullable=True),
        "symbol": {**SYMBOL, "nullable": True},
        "time": DATE,
    }),
    # set by a sweep config (+sweep=optuna_sharpe): the metric a sweeper optimises
    "sweep": _dict({"objective": _str(empty=False)}),
    # Tolerated if a caller forgets to drop it: Hydra's own section is Hydra's to check.
    "hydra": {"type": "dict", "allow_unknown": True},
}


# --- the validator --------------------------------------------------------------------------


GT_VALUE = errors.ErrorDefinition(0x4A, "gt")  # a custom code beside Cerberus' MIN_VALUE (0x42)
BAD_TIME = errors.ErrorDefinition(0x4B, "utc_time")
NOT_FINITE = errors.ErrorDefinition(0x4C, "finite")


def parses_as_utc_time(text: str) -> bool:
    """What engine.live.settings.LiveSettings.end_ms accepts: numpy's ISO parser, 'Z' dropped."""
    import numpy as np

    try:
        np.datetime64(text.replace("Z", ""), "ms")
    except ValueError:
        return False
    return True


class _RulebookValidator(Validator):
    # bool is an int in Python; a config "max_positions: true" is a mistake, not 1.
    types_mapping = {
        **Validator.types_mapping,
        "integer": TypeDefinition("integer", (int,), (bool,)),
    }

    def _validate_gt(self, constraint, field, value):
        """Exclusive lower bound.

        The rule's arguments are validated against this schema:
        {'type': 'number'}
        """
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value > constraint:
            self._error(field, GT_VALUE)

    def _validate_utc_time(self, constraint, field, value):
        """A real calendar time (the regex rule checks the shape, this the month/day/hour ranges).

        The rule's arguments are validated against this schema:
        {'type': 'boolean'}
        """
        # A value of the wrong shape is the regex rule's to report (one problem per key).
        if constraint and isinstance(value, str) and re.match(UTC_TIME_RE, value) and not parses_as_utc_time(value):
            self._error(field, BAD_TIME)

    def _validate_finite(self, constraint, field, value):
        """Not NaN nor infinity (both pass every min/max comparison).

        The rule's arguments are validated against this schema:
        {'type': 'boolean'}
        """
        if constraint and isinstance(value, float) and not math.isfinite(value):
            self._error(field, NOT_FINITE)

    def _validate_meta(self, constraint, field, value):
        """A human description of the expected value, used in messages.

        The rule's arguments are validated against this schema:
        {'type': 'string'}
        """


_TYPE_WORDS = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
               "dict": "a mapping (key: value)", "list": "a list"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "mapping",
            list: "list"}.get(type(value), type(value).__name__)


def _schema_at(schema: dict, path: tuple) -> dict | None:
    """The mapping schema (field -> rules) of the dict at document path, or None."""
    node: dict | None = schema
    for part in path:
        if node is None:
            return None
        rules = node.get(part) if isinstance(part, str) else None
        if rules is None:
            # items of keysrules/valuesrules mappings and lists: look through valuesrules/schema
            return None
        sub = rules.get("schema")
        if rules.get("type") == "list":
            return None
        node = sub if isinstance(sub, dict) else None
    return node


def _found(path: str, value: Any) -> str:
    leaf = path.rsplit(".", 1)[-1]
    if is_secret_path(path) or is_env_name_key(leaf):
        return "***"
    return f"{paths.show(value)} ({_type_name(value)})"


def _leaves(errs) -> list:
    out = []
    for e in errs:
        if e.is_group_error:
            out.extend(_leaves(e.child_errors))
        else:
            out.append(e)
    return out


def _rules_of(schema: dict, doc_path: tuple, schema_path: tuple) -> dict:
    """The rule set an error's schema_path points into (for 'meta' descriptions)."""
    node: Any = schema
    for part in schema_path[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return {}
    return node if isinstance(node, dict) else {}


# Cerberus bound errors -> (problem code, expected, message after the path); {} is the bound.
_BOUNDS = {
    errors.MIN_VALUE.code: ("min", ">= {}", "must be at least {}"),
    errors.MAX_VALUE.code: ("max", "<= {}", "must be at most {}"),
    errors.MIN_LENGTH.code: ("min_length", "at least {} item(s)", "needs at least {} item(s)"),
    errors.MAX_LENGTH.code: ("max_length", "at most {} item(s)", "allows at most {} item(s)"),
}


def _bound(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10_000 else str(v)


def range_text(rules: dict) -> str:
    """The range a numeric key accepts, in words: '0 .. 100', '> 0 .. 1', '>= 1'."""
    lo = f"> {_bound(rules['gt'])}" if "gt" in rules else (_bound(rules["min"]) if "min" in rules else None)
    hi = _bound(rules["max"]) if "max" in rules else None
    if lo is not None and hi is not None:
        return f"{lo} .. {hi}"
    if lo is not None:
        return lo if lo.startswith(">") else f">= {lo}"
    return f"<= {hi}" if hi is not None else "any finite value"


def _to_problem(e, schema: dict, prefix: str) -> ConfigProblem:
    doc_path = tuple(e.document_path)
    path = paths.join(prefix, *doc_path)
    rules = _rules_of(schema, doc_path, tuple(e.schema_path))
    meta = rules.get("meta")
    value = e.value
    code = e.code
    if code == errors.UNKNOWN_FIELD.code:
        mapping = _schema_at(schema, doc_path[:-1]) or {}
        known = sorted(k for k in mapping if k != "hydra")
        key = str(doc_path[-1]) if doc_path else ""
        return ConfigProblem(
            "unknown_key", path, _found(path, value),
            "one of: " + ", ".join(known) if known else "no keys here",
            f"unknown key '{key}' in '{paths.join(prefix, *doc_path[:-1]) or '<root>'}'",
            tuple(difflib.get_close_matches(key, known, n=3, cutoff=0.6)),
        )
    if code == errors.REQUIRED_FIELD.code:
        return ConfigProblem("missing_key", path, "nothing", "a value (required)", f"required key '{path}' is missing")
    if code == errors.NOT_NULLABLE.code:
        return ConfigProblem("null", path, "null", "a value (null is not allowed)", f"'{path}' must not be null")
    if code == errors.EMPTY_NOT_ALLOWED.code:
        return ConfigProblem("empty", path, _found(path, value), "a non-empty value", f"'{path}' must not be empty")
    if code == errors.BAD_TYPE.code:
        want = _TYPE_WORDS.get(str(e.constraint), str(e.constraint))
        return ConfigProblem("type", path, _found(path, value), want, f"'{path}' must be {want}")
    if code in _BOUNDS:
        kind, expected, says = _BOUNDS[code]
        bound = expected.format(_bound(e.constraint))
        if code in (errors.MIN_VALUE.code, errors.MAX_VALUE.code):
            bound += f" (range: {range_text(rules)})"
        return ConfigProblem(kind, path, _found(path, value), bound, f"'{path}' {says.format(_bound(e.constraint))}")
    if code == NOT_FINITE.code:
        rng = range_text(rules)
        return ConfigProblem("not_finite", path, _found(path, value),
                             "a finite number" + ("" if rng == "any finite value" else f", {rng}"),
                             f"'{path}' must be a finite number (NaN and infinity are not allowed)")
    if code == errors.UNALLOWED_VALUE.code:
        allowed = [str(a) for a in e.constraint]
        return ConfigProblem(
            "allowed", path, _found(path, value), "one of: " + ", ".join(allowed),
            f"'{path}' must be one of {', '.join(allowed)}",
            tuple(difflib.get_close_matches(str(value), allowed, n=3, cutoff=0.5)),
        )
    if code == errors.REGEX_MISMATCH.code:
        want = meta or f"a string matching {e.constraint}"
        if "keysrules" in tuple(e.schema_path):
            parent = paths.join(prefix, *doc_path[:-1])
            return ConfigProblem("format", path, f"key {paths.show(value)}", f"keys that are {want}",
                                 f"key {paths.show(value)} in '{parent}' must be {want}")
        return ConfigProblem("format", path, _found(path, value), want, f"'{path}' must be {want}")
    if code == BAD_TIME.code:
        want = meta or "a valid ISO-8601 UTC time"
        return ConfigProblem("format", path, _found(path, value), want, f"'{path}' must be {want}")
    if e.rule == "gt" or tuple(e.schema_path)[-1:] == ("gt",):
        return ConfigProblem("min", path, _found(path, value), f"> {e.constraint} (range: {range_text(rules)})",
                             f"'{path}' must be greater than {e.constraint}")
    text = "; ".join(str(i) for i in e.info) if e.info else str(e.rule)
    return ConfigProblem(f"schema.{e.rule}", path, _found(path, value), text, f"'{path}': {text}")


def validate(doc: Any, schema: dict = COMPOSED, *, prefix: str = "", schema_id: str = "composed") -> list[ConfigProblem]:
    """Every schema problem of doc (all at once), sorted by path then code."""
    if not isinstance(doc, dict):
        return [ConfigProblem("type", prefix, _found(prefix or "config", doc), "a mapping (key: value)",
                              f"'{prefix or 'the config'}' must be a mapping")]
    v = validator(schema_id, schema, _RulebookValidator)
    if v.validate(doc, normalize=False):
        return []
    found = [_to_problem(e, schema, prefix) for e in _leaves(v._errors)]
    # NaN or infinity also fails a bound: one problem per key, the one that says what is wrong.
    not_finite = {p.path for p in found if p.code == "not_finite"}
    return [p for p in found if p.code == "not_finite" or p.path not in not_finite]


def validate_group(group: str, doc: Any) -> list[ConfigProblem]:
    """Check one group's config (the content of a conf/<group>/<option>.yaml file)."""
    return validate(doc, GROUP_SCHEMAS[group], prefix=group, schema_id=f"group:{group}")
