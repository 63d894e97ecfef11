"""What one live-clock mode chooses, once, before a session starts: its broker and the few
declared facts that differ between dry_run, paper and live. The registry of these plans is
engine/modes (``LIVE_PLANS``); the loop reads a plan and never the mode's name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from engine.live.port import Broker


@dataclass(frozen=True)
class SessionPlan:
    name: str
    broker: Callable[[Any], Broker]  # the exchange adapter -> this mode's broker
    decides_every_bar: bool = False  # missed bars are decided one by one (live.shadow_catch_up): the shadow replay
    burn_in: bool = False  # an account's first cycles trade with reduced caps (live.burn_in)
    gated: bool = False  # starting needs a passing paper session (live.burn_in.require_paper)
    proves_burn_in: bool = False  # a clean session of enough cycles is recorded as "passed" (the gate's evidence)
