"""Factories for config-check tests: composed shipped configs as plain dicts, and small edits."""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engine.config import paths

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"

# Throwaway credentials: long and distinctive so a leak is unmistakable in any file.
SECRET_KEY = "organizations/test-org/apiKeys/KNOWN-KEY-7f3a9c1e5b"
SECRET_VALUE = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKNOWNSECRETVALUE0123456789abcdefXYZ\n-----END EC PRIVATE KEY-----\n"
LIVE_ENV = {"COINBASE_API_KEY": SECRET_KEY, "COINBASE_API_SECRET": SECRET_VALUE}


@lru_cache(maxsize=64)
def _composed(overrides: tuple[str, ...]) -> dict:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="config", overrides=list(overrides))
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    plain.pop("hydra", None)
    return plain


def composed(*overrides: str) -> dict:
    """The shipped config composed with Hydra (as run.py would), as a fresh plain dict."""
    return copy.deepcopy(_composed(tuple(overrides)))


def valid_config() -> dict:
    return composed()


def live_config() -> dict:
    """A config that passes every live check when LIVE_ENV is the environment (the burn-in is
    conf/live/default.yaml's). No data source beyond the default: live reads bars from the exchange."""
    return composed("mode=live")


def shadow_config(state_dir: Path, account: str = "default", *, with_state: bool = True) -> dict:
    """mode=shadow over state_dir; with_state: an (empty) dry_run state file is there to replay."""
    if with_state:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        (Path(state_dir) / f"{account}-dry_run.sqlite").touch()
    return composed("mode=shadow", f"live.state_dir={state_dir}", f"live.account={account}")


def edited(cfg: dict, *edits: tuple) -> dict:
    """A copy of cfg with edits applied: ("set", path, value) or ("del", path)."""
    out = copy.deepcopy(cfg)
    for op, path, *value in edits:
        if op == "set":
            assert paths.put(out, path, value[0]), path
        elif op == "del":
            paths.pop(out, path)
        else:
            raise ValueError(op)
    return out


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a dict entry (inner and leaf) of a config."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.append(p)
            out.extend(leaf_paths(v, p))
    return out


def exchange_layer_section(local: bool = False) -> dict:
    """An exchange section with the exchange layer's keys (as in conf/exchange/{coinbase,local_sim}.yaml
    of the exchange branch): client, rate budgets, retries, order recovery, emulator."""
    return {
        "name": "local_sim" if local else "coinbase", "ccxt_id": "coinbase", "rest_url": None,
        "api_key_env": None if local else "COINBASE_API_KEY", "api_secret_env": None if local else "COINBASE_API_SECRET",
        "timeout_ms": 5000, "ccxt_log_level": "INFO",
        "rate_limits": {"pools": {"public": {"limit_per_s": 10, "burst_s": 1.0},
                                  "private": {"limit_per_s": 30, "burst_s": 1.0}},
                        "safety_margin": 0.1, "alert_threshold": 0.8, "endpoint_costs": {}, "learn_from_headers": True},
        "retry": {"max_attempts": 5, "base_delay_s": 0.1, "max_delay_s": 2.0, "jitter": 0.5, "seed": 0},
        "orders": {"confirm_after_create": True, "recovery_lookback_s": 900, "recovery_attempts": 4},
        "emulator": {"autostart": local, "host": "127.0.0.1", "port": 0, "seed": 7, "speed": 60.0, "products": 8,
                     "quote_currency": "USDC", "starting_balance": 100000.0, "enforce_rate_limits": True},
    }
