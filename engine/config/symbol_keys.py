"""Per-symbol params set from the command line.

Hydra's override grammar refuses '/' in a key path (``+risk.params.asset_caps.BTC/USDC=0.05`` is a
parse error), so such a key may spell the symbol with '-' instead: ``BTC-USDC`` is read as the ccxt
symbol ``BTC/USDC``. The mapping happens once, right after the composed config is read, so every
check and the rule loader see ccxt symbols only. (The whole-mapping form needs no mapping:
``'+risk.params.asset_caps={BTC/USDC:0.05}'`` parses as it is.)
"""
from __future__ import annotations

import copy
import re
from typing import Any

from . import paths

# params keyed by symbol (docs/config.md, "Per-symbol params on the command line")
SYMBOL_KEYED = ("risk.params.asset_caps",)
_DASHED = re.compile(r"^([A-Z0-9]{1,20})-([A-Z0-9]{2,10})$")


def symbol_of(key: Any) -> Any:
    """``BTC-USDC`` -> ``BTC/USDC``; any other key unchanged."""
    m = _DASHED.match(key) if isinstance(key, str) else None
    return f"{m.group(1)}/{m.group(2)}" if m else key


def restore(cfg: dict) -> dict:
    """``cfg`` with dashed symbol keys of the per-symbol params mapped back (a copy when any is).
    A dashed key comes from the command line, so it wins over the same symbol written with '/'."""
    out = cfg
    for path in SYMBOL_KEYED:
        node = paths.get(cfg, path, None)
        if not isinstance(node, dict) or not any(symbol_of(k) != k for k in node):
            continue
        mapped = {k: v for k, v in node.items() if symbol_of(k) == k}
        mapped.update({symbol_of(k): v for k, v in node.items() if symbol_of(k) != k})
        if out is cfg:
            out = copy.deepcopy(cfg)
        paths.put(out, path, mapped)
    return out
