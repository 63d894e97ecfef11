"""Trading costs of a simulated fill: fee tiers and slippage (shared by backtest and paper)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.cycle.npfast import nan_to_num

DAY_MS = 86_400_000

# the fee schedule when the exchange config names none: Coinbase's lowest tier
DEFAULT_FEE_TIERS = ({"min_volume_usd": 0, "maker_bps": 60, "taker_bps": 120},)


@dataclass(frozen=True)
class FeeTier:
    min_volume_usd: float
    maker_bps: float
    taker_bps: float


class FeeSchedule:
    """Maker/taker rates by tier; the tier follows our trailing 30-day traded volume."""

    def __init__(self, tiers: list[FeeTier]):
        if not tiers:
            raise ValueError("a fee schedule needs at least one tier")
        self.tiers = sorted(tiers, key=lambda t: t.min_volume_usd)
        self._window: deque[tuple[int, float]] = deque()
        self._volume = 0.0

    @classmethod
    def from_config(cls, fees: dict) -> "FeeSchedule":
        return cls([FeeTier(float(t["min_volume_usd"]), float(t["maker_bps"]), float(t["taker_bps"]))
                    for t in fees["tiers"]])

    def record(self, time_ms: int, notional: float) -> None:
        self._window.append((time_ms, notional))
        self._volume += notional

    def tier(self, now_ms: int) -> FeeTier:
        while self._window and self._window[0][0] <= now_ms - 30 * DAY_MS:
            self._volume -= self._window.popleft()[1]
        current = self.tiers[0]
        for t in self.tiers:
            if self._volume >= t.min_volume_usd:
                current = t
        return current


@dataclass(frozen=True)
class SlippageModel:
    """Half the quoted spread, plus impact growing with order size relative to bar volume,
    plus optional seeded noise (always adverse: |noise|). ``model='none'`` costs nothing."""

    model: str = "spread_impact"
    impact_coef: float = 0.1  # bps per 1% of the bar's quote volume
    noise_bps: float = 0.0

    def bps(self, spread_bps: np.ndarray, notional: np.ndarray, bar_volume_usd: np.ndarray,
            rng: np.random.Generator | None) -> np.ndarray:
        if self.model == "none":
            return np.zeros_like(notional)
        half = nan_to_num(spread_bps) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(bar_volume_usd > 0, notional / bar_volume_usd * 100.0, 0.0)
        out = half + self.impact_coef * part
        if self.noise_bps > 0 and rng is not None:
            out = out + np.abs(rng.normal(0.0, self.noise_bps, size=notional.shape))
        return out
