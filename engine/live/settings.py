"""The ``live`` config group (conf/live/*.yaml) as a typed, checked dataclass."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.live.errors import LiveError
from engine.live.notify.settings import NotifySettings
from engine.paths import project_path

OPEN_ORDER_POLICIES = ("cancel", "keep")
CLOCKS = ("auto", "wall", "sim", "step")  # step: the in-process emulator moved bar by bar (engine/live/clock.py)


@dataclass(frozen=True)
class BurnIn:
    cycles: int = 24  # the first N live cycles of an account run with reduced caps ...
    days: float = 0.0  # ... or the first N days (whichever lasts longer)
    cap_scale: float = 0.25  # entries are scaled by this during burn-in
    max_order_notional: float = 100.0  # and no entry above this notional (quote currency)
    require_paper: bool = True  # a passing paper session of the same account must exist
    # what "passing" means (engine/live/safeguards.py, paper_verdict): same exchange, symbols and rule
    # set, at least this many cycles and this many wall-clock hours, no unresolved alert
    min_paper_cycles: int = 24
    min_paper_hours: float = 24.0


@dataclass(frozen=True)
class LiveSettings:
    account: str = "default"
    state_dir: str = "state"
    max_cycles: int | None = 20  # a live-clock run always ends: cycle limit ...
    end_time: str | None = None  # ... and/or an ISO-8601 UTC end time (on the mode's clock)
    timeframe: str | None = None  # null: data.timeframe (the local emulator: its 1m step)
    symbols: list[str] = field(default_factory=list)  # empty: the exchange's spot markets in quote_currency
    quote_currency: str = "USDC"
    max_symbols: int = 8
    history_bars: int = 400  # bars fetched at session start: >= the longest window the rules read
    initial_cash: float | None = None  # dry_run/paper: null = backtest.initial_cash
    clock: str = "auto"  # auto: the emulator's simulated clock for local_sim, wall clock otherwise
    sim_speed: float | None = None  # simulated seconds per wall second; null = exchange.emulator.speed
    sim_origin_ms: int | None = None  # emulator in another process: its simulated ms ...
    sim_origin_wall_s: float | None = None  # ... at this wall time (time.time())
    settle_s: float = 2.0  # wall clock: wait this long after a bar close before fetching it
    max_quote_age_s: float = 60.0  # orders on quotes older than this are blocked (every mode)
    open_orders_on_start: str = "cancel"  # cancel | keep orders found open on restart
    resend_max_age_bars: int = 1  # an unsent order older than this is abandoned, not sent late
    kill_switch_file: str | None = None  # this file existing = kill switch on
    shadow_catch_up: bool = True  # dry_run decides every missed bar (so the backtest replay matches)
    burn_in: BurnIn = field(default_factory=BurnIn)
    notify: NotifySettings = field(default_factory=NotifySettings)  # alerts to people (docs/console.md)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "LiveSettings":
        data = dict(data or {})
        burn = data.pop("burn_in", None) or {}
        notify = data.pop("notify", None)
        kw = _fields(cls, data, "live")
        kw["burn_in"] = BurnIn(**_fields(BurnIn, burn, "live.burn_in"))
        kw["notify"] = NotifySettings.from_mapping(notify)
        s = cls(**kw)
        s.check()
        return s

    def check(self) -> None:
        if self.max_cycles is None and self.end_time is None:
            raise LiveError("live.max_cycles and live.end_time are both null; a live-clock run needs a cycle "
                            "limit or an end time (e.g. live.max_cycles=100)")
        if self.max_cycles is not None and self.max_cycles < 1:
            raise LiveError(f"live.max_cycles is {self.max_cycles}; expected >= 1 (or null with live.end_time)")
        if self.open_orders_on_start not in OPEN_ORDER_POLICIES:
            raise LiveError(f"live.open_orders_on_start is {self.open_orders_on_start!r}; expected one of "
                            f"{', '.join(OPEN_ORDER_POLICIES)}")
        if self.clock not in CLOCKS:
            raise LiveError(f"live.clock is {self.clock!r}; expected one of {', '.join(CLOCKS)}")
        if self.history_bars < 2:
            raise LiveError(f"live.history_bars is {self.history_bars}; expected >= 2")
        if self.burn_in.min_paper_cycles < 1 or self.burn_in.min_paper_hours < 0:
            raise LiveError(f"live.burn_in.min_paper_cycles is {self.burn_in.min_paper_cycles} and min_paper_hours "
                            f"{self.burn_in.min_paper_hours}; expected >= 1 and >= 0")
        if not 0 < self.burn_in.cap_scale <= 1:
            raise LiveError(f"live.burn_in.cap_scale is {self.burn_in.cap_scale}; expected 0 < x <= 1")
        if not self.account.replace("_", "").replace("-", "").isalnum():
            raise LiveError(f"live.account is {self.account!r}; expected letters, digits, '-' or '_' "
                            "(it names the state file)")

    def state_path(self, mode: str) -> Path:
        """One SQLite file per account and mode: paper and live never share state."""
        return project_path(self.state_dir) / f"{self.account}-{mode}.sqlite"

    def end_ms(self) -> int | None:
        if self.end_time is None:
            return None
        import numpy as np
        try:
            return int(np.datetime64(str(self.end_time).replace("Z", ""), "ms").astype(np.int64))
        except ValueError:
            raise LiveError(f"live.end_time is {self.end_time!r}; expected an ISO time such as 2024-03-01T12:00") from None


def _fields(cls: type, data: Mapping[str, Any], path: str) -> dict:
    names = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in data.items():
        if k not in names:
            hint = difflib.get_close_matches(str(k), names, n=1)
            raise LiveError(f"{path}.{k}: unknown key{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                            f"(expected one of {', '.join(sorted(names))})")
        if k == "symbols":
            v = list(v or [])
        out[k] = v
    return out
