"""Cerberus schemas of the rule files, one per kind. Unknown keys are rejected."""
from __future__ import annotations

from engine.market.data import TIMEFRAME_MS
from engine.rules.bounds import MAX_OFFSET_BPS

_EXPR = {"type": ["string", "number", "boolean"], "required": True}  # a boolean expression
_NUM_EXPR = {"type": ["string", "number"]}  # a numeric expression
_NUM_EXPR_REQ = {**_NUM_EXPR, "required": True}
EXPRESSION_RULES = (_EXPR, _NUM_EXPR, _NUM_EXPR_REQ)  # for the generated reference
_ID = {"type": "string", "required": True, "regex": r"^[A-Za-z_][A-Za-z0-9_]*$"}
_WHY = {"type": "string"}
# a literal list, or params.x naming a list param (so a config can change a rule's regimes)
_REGIMES = {"type": ["list", "string"], "schema": {"type": "string"}, "minlength": 1}
_PARAMS = {"type": "dict", "keysrules": {"type": "string", "regex": r"^[A-Za-z_][A-Za-z0-9_]*$"}}

_RULE = {"type": "dict", "schema": {"id": _ID, "when": _EXPR, "why": _WHY, "regimes": _REGIMES}}

_NUM_OR_PARAM = {"type": ["number", "string"]}

SCHEMAS: dict[str, dict] = {
    "regime": {
        "kind": {"type": "string", "allowed": ["regime"], "required": True},
        # every regime rule reads bars of this timeframe, built from the data's (coarser only)
        "timeframe": {"type": "string", "allowed": list(TIMEFRAME_MS)},
        "params": _PARAMS,
        "index": {
            "type": "dict",
            "schema": {
                "weighting": {"type": "string", "allowed": ["equal"]},
                "exclude_themes": {"type": "list", "schema": {"type": "string"}},
            },
        },
        "default": {"type": "string", "required": True, "regex": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        "regimes": {"type": "list", "required": True, "minlength": 1,
                    "schema": {"type": "dict", "schema": {"id": _ID, "when": _EXPR, "why": _WHY}}},
    },
    "universe": {
        "kind": {"type": "string", "allowed": ["universe"], "required": True},
        "params": _PARAMS,
        "cache": {
            "type": "dict",
            "schema": {
                "ttl": {"type": ["string", "integer"], "required": True},
                "rebuild_on_regime_change": {"type": "boolean"},
            },
        },
        "filters": {"type": "list", "schema": _RULE},  # none: every product (ranked and cut to top)
        "rank": {
            "type": "dict",
            "schema": {
                "by": _NUM_EXPR,
                "descending": {"type": "boolean"},
                "top": {"type": ["integer", "string"], "required": True},
            },
        },
    },
    "strategy": {
        "kind": {"type": "string", "allowed": ["strategy"], "required": True},
        "name": {"type": "string", "required": True},
        "params": _PARAMS,
        "entry": {"type": "list", "required": True, "minlength": 1, "schema": _RULE},
        "exit": {"type": "list", "required": True, "schema": _RULE},
        "size": _NUM_EXPR_REQ,
        "priority": _NUM_EXPR,
        # protections filled inside the bar (docs/backtest.md, fill model items 9-13)
        "protect": {
            "type": "dict",
            "schema": {
                "stop_loss": _NUM_EXPR,
                "take_profit": _NUM_EXPR,
                "trailing_stop": _NUM_EXPR,
                "time_stop": {"type": ["integer", "string"]},
            },
        },
    },
    "risk": {
        "kind": {"type": "string", "allowed": ["risk"], "required": True},
        "params": _PARAMS,
        "caps": {
            "type": "list",
            "schema": {
                "type": "dict",
                "schema": {
                    "id": _ID,
                    "type": {"type": "string", "required": True,
                             "allowed": ["asset_weight", "theme_weight", "total_weight", "position_count"]},
                    "limit": _NUM_OR_PARAM,
                    "limits": {"type": ["dict", "string"]},
                    "per_symbol": {"type": ["dict", "string"]},
                    "why": _WHY,
                },
            },
        },
        "halts": {
            "type": "list",
            "schema": {
                "type": "dict",
                "schema": {
                    "id": _ID, "when": _EXPR, "why": _WHY,
                    "action": {"type": "string", "allowed": ["block_entries", "flatten"], "required": True},
                    "cooldown_bars": {"type": ["integer", "string"]},
                },
            },
        },
        "vetoes": {"type": "list", "schema": _RULE},
        # scoped protections: locks after stop-outs or poor trades, and the equity stop
        "protections": {
            "type": "list",
            "schema": {
                "type": "dict",
                "schema": {
                    "id": _ID, "why": _WHY,
                    "type": {"type": "string", "required": True,
                             "allowed": ["cooldown", "stop_outs", "low_profit", "equity_stop"]},
                    "scope": {"type": "string", "allowed": ["symbol", "theme", "portfolio"]},
                    "themes": {"type": "list", "schema": {"type": "string"}, "minlength": 1},
                    "count": {"type": ["integer", "string"]},
                    "window_bars": {"type": ["integer", "string"]},
                    "lock_bars": {"type": ["integer", "string"]},
                    "min_trades": {"type": ["integer", "string"]},
                    "min_return": _NUM_OR_PARAM,
                    "reduce_at": _NUM_OR_PARAM,
                    "halt_at": _NUM_OR_PARAM,
                },
            },
        },
    },
    "execution": {
        "kind": {"type": "string", "allowed": ["execution"], "required": True},
        "params": _PARAMS,
        "order": {"type": "dict", "schema": {"type": {"type": "string", "allowed": ["market", "limit"]},
                                             "offset_bps": {"type": "number", "min": -MAX_OFFSET_BPS, "max": MAX_OFFSET_BPS}}},
        "guards": {"type": "list", "schema": _RULE},
    },
}
