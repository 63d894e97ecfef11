"""The bars of a backtest window: [start, stop) for backtest.start / backtest.end over the bar times.

Apart from the market so that mode=validate computes a sample market's window unbuilt, with the
run's own code and message.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from engine.errors import UserError


def window_of(times: np.ndarray, bt_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """Bar range [start, stop) for backtest.start / backtest.end (ISO dates, UTC) over ``times``."""
    def to_ms(v: Any, key: str) -> int:
        try:
            return int(np.datetime64(str(v).replace("Z", ""), "ms").astype(np.int64))
        except ValueError:
            raise UserError(f"backtest.{key} is {v!r}; expected an ISO date such as 2024-03-01") from None
    start = 0 if bt_cfg.get("start") is None else int(np.searchsorted(times, to_ms(bt_cfg["start"], "start")))
    stop = len(times) if bt_cfg.get("end") is None else int(np.searchsorted(times, to_ms(bt_cfg["end"], "end")))
    if stop - start < 2:
        raise UserError(f"backtest window {bt_cfg.get('start')} .. {bt_cfg.get('end')} holds {max(stop - start, 0)} bars "
                        f"of data that spans {len(times)} bars; expected at least 2")
    return start, stop
