"""Features shared by many rule sets over one market: a sweep's jobs and a walk-forward's grid
points compute each feature once per distinct expression, not once per run.

The feature store keys every computed array by its expression's canonical text
(``sma(close, 48)``), so two rule sets that read the same expression read the same array, and
a sweep over ``fast`` computes ``sma(close, fast)`` once per distinct value of ``fast``. What
is shared:

- the market columns (``close`` forward-filled, ``volume_usd_24h``, ...): one lazy mapping per
  market;
- per distinct regime labelling (the same regime rules give the same per-bar labels), one
  layer of computed features on top of it: a feature that reads ``regime`` is keyed by its
  text, which does not name the regime rules, so a layer is never shared across labellings;
- prepare's regime labelling (per regime file, by its rules' canonical texts) and universe (per
  layer and universe file): a grid over strategy parameters computes each once (:meth:`memo`).

Arrays are read-only once built (the cycle and the fill model only read them), so sharing
cannot change a result: ``tests/test_sweep_shared.py`` checks runs with and without sharing
are identical.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, MutableMapping

import numpy as np

from engine.cycle.features import market_series
from engine.market.data import MarketData


class Layer(dict):
    """Features computed on top of a parent mapping: reads fall through to the parent (which
    may build them lazily), writes stay in the layer."""

    def __init__(self, parent: MutableMapping[str, np.ndarray]):
        super().__init__()
        self.parent = parent

    def __missing__(self, key: str) -> np.ndarray:
        return self.parent[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.parent


class SharedFeatures:
    """The market columns of one market and one feature layer per regime labelling."""

    def __init__(self, market: MarketData):
        self.market = market
        self.base = market_series(market)
        self._layers: dict[str, Layer] = {}
        self._memo: dict[tuple, Any] = {}
        self.hits = 0  # layers handed out again (for benchmarks and tests)
        self.memo_hits = 0  # prepare's regime labels and universes handed out again

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """What ``build()`` returns, computed once per ``key``: prepare's regime labelling and
        universe, which depend only on the rule files' canonical expression texts and settings
        spelled in ``key`` (a grid over strategy parameters shares them). The arrays are
        read-only, as the features are."""
        if key in self._memo:
            self.memo_hits += 1
            return self._memo[key]
        out = self._memo[key] = build()
        return out

    def nbytes(self) -> int:
        """Bytes held by the computed layers (broadcast views count as nothing)."""
        return sum(a.nbytes for layer in self._layers.values() for a in dict.values(layer)
                   if isinstance(a, np.ndarray) and a.base is None)

    def layer(self, labels: tuple[str, ...], regime_idx: np.ndarray, regime: Any) -> Layer:
        key = hashlib.sha256(repr(labels).encode() + np.ascontiguousarray(regime_idx).tobytes()).hexdigest()
        found = self._layers.get(key)
        if found is not None:
            self.hits += 1
            return found
        layer = self._layers[key] = Layer(self.base)
        layer["regime"] = regime
        return layer
