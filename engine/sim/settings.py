"""The simulated account's settings: cash, fee tiers, slippage, participation, seed, window.

One dataclass for every simulated broker (the backtest's and paper's), built from the
``backtest`` config section and ``exchange.fees``: one source for the cost model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from engine.sim.costs import DEFAULT_FEE_TIERS, FeeSchedule, SlippageModel


@dataclass(frozen=True)
class SimSettings:
    initial_cash: float = 10_000.0
    fee_tiers: tuple = DEFAULT_FEE_TIERS
    slippage: SlippageModel = SlippageModel()
    max_participation: float = 0.1
    seed: int = 42
    # sell every open position at the last bar's close (else they are marked there, still open)
    close_at_end: bool = False
    start: int = 0  # first bar index
    stop: int | None = None  # one past the last bar index

    @classmethod
    def from_config(cls, backtest: Mapping[str, Any], fees: Mapping[str, Any] | None, seed: int) -> "SimSettings":
        """Costs and cash from the ``backtest`` section and ``exchange.fees`` (the window is
        the caller's: it needs the market). Every simulated broker builds its costs here."""
        slip = backtest.get("slippage") or {}
        return cls(
            initial_cash=float(backtest.get("initial_cash", 10_000.0)),
            fee_tiers=tuple(dict(t) for t in (fees or {"tiers": DEFAULT_FEE_TIERS})["tiers"]),
            slippage=SlippageModel(slip.get("model", "spread_impact"), float(slip.get("impact_coef", 0.1)),
                                   float(slip.get("noise_bps", 0.0))),
            max_participation=float(backtest.get("max_participation", 0.1)),
            seed=int(seed),
            close_at_end=bool(backtest.get("close_at_end", False)),
        )

    @classmethod
    def from_run_config(cls, cfg: Mapping[str, Any]) -> "SimSettings":
        """From a whole composed config (``backtest``, ``exchange.fees``, ``seed``)."""
        return cls.from_config(cfg.get("backtest") or {}, (cfg.get("exchange") or {}).get("fees"),
                               int(cfg.get("seed", 42)))

    def fee_schedule(self) -> FeeSchedule:
        return FeeSchedule.from_config({"tiers": list(self.fee_tiers)})
