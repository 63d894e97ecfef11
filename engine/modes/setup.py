"""Build a run's parts from the composed config: market data, rule set, settings, identity.

Each function takes only the config sections it needs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import engine
from engine.backtest.engine import BacktestSettings
from engine.config.rule_params import RULE_GROUPS  # the config groups that each name a rule file
from engine.errors import UserError
from engine.market.data import MarketData
from engine.paths import project_path, rule_folders
from engine.market.window import window_of
from engine.rules.loader import RuleSet, load_ruleset



def load_market(data_cfg: Mapping[str, Any]) -> MarketData:
    source = data_cfg.get("source")
    if source == "sample":
        from engine.market.sample import SampleSpec, load_sample_market

        from engine.market.memory import require_fits

        spec = SampleSpec.from_mapping({**dict(data_cfg.get("sample") or {}), "timeframe": data_cfg.get("timeframe", "1h")})
        require_fits(spec.n_bars, spec.n_symbols, spec.timeframe, data_cfg.get("max_memory_gib"), "data.sample")
        return load_sample_market(spec, project_path(data_cfg.get("cache_dir", ".cache/rulebook")))
    if source in ("csv", "parquet", "freqtrade", "store"):
        from engine.market.loaders import load_market as load_files
        from engine.market.store import MarketStore

        symbols = data_cfg.get("symbols")
        symbols = list(symbols) if symbols else None
        timeframe, max_gib = data_cfg.get("timeframe", "1h"), data_cfg.get("max_memory_gib")
        if source == "store":
            market = MarketStore(data_path(data_cfg)).load(timeframe, symbols, max_memory_gib=max_gib)
        else:
            market = load_files(source, data_path(data_cfg), timeframe, symbols, max_gib)
        return with_default_spread(market, data_cfg)
    raise UserError(f"data.source is {source!r}; expected one of sample, csv, parquet, freqtrade, store")


def data_path(data_cfg: Mapping[str, Any]) -> Path:
    """``data.path`` under the project: the folder of the files, or the market store."""
    path = data_cfg.get("path")
    if not path or path == "???":
        raise UserError(f"data.path is not set; data={data_cfg.get('source')} needs the folder of the files "
                        f"(data.path=DIR)")
    return project_path(path)


def with_default_spread(market: MarketData, data_cfg: Mapping[str, Any]) -> MarketData:
    """Files and the store carry no quotes: a bar without a spread gets ``data.default_spread_bps``."""
    default = float(data_cfg.get("default_spread_bps", 5.0))
    missing = np.isnan(market.spread_bps) & ~np.isnan(market.close)
    market.spread_bps = np.where(missing, default, market.spread_bps)
    return market


def market_for(cfg: Mapping[str, Any]) -> MarketData:
    """The run's market (``data``) with the product table's facts (``product_facts``) applied:
    the one place a backtest learns themes, increments and minimum notional."""
    market = load_market(cfg["data"])
    market.info = product_info(cfg, market.info, market.source)
    return market


def product_info(cfg: Mapping[str, Any], info: tuple, source: str) -> tuple:
    """The symbols' info with the product table's facts applied (its warnings logged once)."""
    import logging

    from engine.market import products

    facts = products.load_for(cfg)
    applied = products.apply(facts, info, stated=source.startswith("sample:"))
    products.warn(logging.getLogger("rulebook.market"), applied, facts, source)
    return applied.info


# The last market a multirun job of this process built, with the features its rules computed:
# the next job of the same sweep (Hydra's basic launcher runs them one after another in one
# process; joblib's workers are reused too) starts from them instead of from the files.
_SWEEP_MARKET: dict[str, Any] = {}
SHARED_MAX_BYTES = 2 << 30  # start afresh beyond this: a long sweep over many windows keeps no unbounded cache


def _market_key(cfg: Mapping[str, Any]) -> str:
    return json.dumps({k: cfg.get(k) for k in ("data", "product_facts", "rules_dir")}, sort_keys=True, default=str)


def market_and_features(cfg: Mapping[str, Any]):
    """``(market, shared)``: ``market_for(cfg)`` and, under a multirun, the features earlier jobs
    of this process computed over the same market (engine/cycle/shared.py); ``shared`` is None
    outside a multirun, where one run per process has nothing to share."""
    from engine.cycle.shared import SharedFeatures
    from engine.sweep.job import in_multirun

    if not in_multirun():
        return market_for(cfg), None
    key = _market_key(cfg)
    hit = _SWEEP_MARKET.get(key)
    if hit is not None and hit.nbytes() <= SHARED_MAX_BYTES:
        return hit.market, hit
    _SWEEP_MARKET.clear()
    shared = _SWEEP_MARKET[key] = SharedFeatures(market_for(cfg))
    return shared.market, shared


def load_rules(cfg: Mapping[str, Any], gather: bool = False) -> RuleSet:
    """The run's rule set (``gather``: raise every rule-file error at once, as mode=validate does)."""
    files, params = rule_sources(cfg)
    return load_ruleset(rule_folders(cfg.get("rules_dir", "rules")), files, params, cfg.get("book") or None,
                        gather=gather)


def rule_sources(cfg: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, dict]]:
    """The rule files a config names (kind -> path under rules_dir) and its params overrides."""
    files: dict[str, str] = {}
    params: dict[str, dict] = {}
    for g in RULE_GROUPS:
        section = cfg.get(g) or {}
        files[g] = section.get("file") or f"{g}.yaml"
        params[g] = dict(section.get("params") or {})
    return files, params


def window(market: MarketData, bt_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """Bar range [start, stop) for backtest.start / backtest.end (ISO dates, UTC)."""
    return window_of(market.times, bt_cfg)


def backtest_settings(cfg: Mapping[str, Any], market: MarketData) -> BacktestSettings:
    bt = cfg.get("backtest") or {}
    start, stop = window(market, bt)
    costs = BacktestSettings.from_config(bt, (cfg.get("exchange") or {}).get("fees"), int(cfg.get("seed", 42)))
    return dataclasses.replace(costs, start=start, stop=stop)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the resolved config (hydra section excluded)."""
    clean = {k: v for k, v in cfg.items() if k != "hydra"}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()


def run_identity(cfg: Mapping[str, Any], market: MarketData, rules: RuleSet, overrides: list[str],
                 redacted: Mapping[str, Any]) -> dict:
    return {
        "seed": int(cfg.get("seed", 42)),
        "config_hash": config_hash(redacted),
        "data_hash": market.data_hash(),
        "engine_version": engine.__version__,
        "rule_files": rules.file_hashes,
        "overrides": list(overrides),
        "config": dict(redacted),
        "mode": (cfg.get("mode") or {}).get("name", "backtest"),
        "strategy": rules.strategy.name,
        "timeframe": market.timeframe,
        "symbols": market.n_symbols,
        "data_source": market.source,
    }
