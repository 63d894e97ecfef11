"""The quiet-bar fast path must give exactly what the per-bar loop gives."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.backtest import prepared_run, results_json, run_both

CASES = [
    ("strategy=sma_cross",),
    ("strategy=momentum",),
    ("strategy=momentum", "risk=aggressive"),
    # tight halts: hourly/daily loss and drawdown halts fire, flatten and re-arm
    ("strategy=sma_cross", "risk.params.daily_loss_limit=0.005", "risk.params.hourly_loss_limit=0.002",
     "risk.params.max_drawdown_halt=0.02", "risk.params.cooldown_bars=6"),
]


@pytest.mark.parametrize("overrides", CASES, ids=lambda o: " ".join(o))
def test_fast_path_results_identical(overrides):
    p, s = prepared_run(overrides)
    slow, fast = run_both(p, s)
    assert fast.stats["skipped"] > 0  # the fast path really skipped something
    assert len(slow.fills) > 0
    assert results_json(fast) == results_json(slow)
    assert np.array_equal(fast.equity, slow.equity)
    assert np.array_equal(fast.exposure, slow.exposure)


@pytest.mark.parametrize("overrides", CASES[3:], ids=lambda o: " ".join(o))
def test_fast_path_trace_identical(overrides):
    p, s = prepared_run(overrides)
    slow, fast = run_both(p, s)
    assert dict(fast.trace.halts) == dict(slow.trace.halts)
    assert any(slow.trace.halts.values())  # the scenario does halt
    assert sorted(fast.trace.events) == sorted(slow.trace.events)
    for key, ev in slow.trace.events.items():
        got = fast.trace.events[key]
        assert [t for t, _ in got] == [t for t, _ in ev], key
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, ev)), key
