"""The backtest over a market read in row chunks (engine/backtest/chunked.py) writes the
in-memory run's results and trace: results.json byte for byte, every trace array equal, with
protections and scoped locks carried over chunk borders and a window inside the market."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.backtest.chunked import frame_of, run_market_chunks
from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.modes.setup import backtest_settings
from engine.rules.loader import load_ruleset
from tests.helpers.backtest import results_json, sample_market
from tests.helpers.chunks import cut
from tests.helpers.rules import SHIPPED_RULES, create_rules_dir, shipped_files
from tests.helpers.runs import compose_config

BARS = 24 * 120
# a distance stop (a stream read by the protections each chunk), a trailing stop, a time stop
PROTECT = "protect:\n  stop_loss: 3 * std(close, 24)\n  trailing_stop: 0.05\n  time_stop: 48\n"
LOCKS = "protections:\n  - {id: cooldown_after_stop, type: cooldown, scope: symbol, lock_bars: 48}\n"


LIMIT = ("order: {type: market}", "order: {type: limit, offset_bps: 3}")


def _rules(tmp_path: Path, protect: bool):
    replace = {}
    if protect:  # with limit orders too: an order decided at a chunk's last bar rests into the next
        root = Path(SHIPPED_RULES)
        replace = {"strategies/sma_cross.yaml": (root / "strategies/sma_cross.yaml").read_text() + PROTECT,
                   "risk.yaml": (root / "risk.yaml").read_text() + LOCKS,
                   "execution.yaml": (root / "execution.yaml").read_text().replace(*LIMIT)}
    return load_ruleset(create_rules_dir(tmp_path, replace), shipped_files())


def _trace_arrays(res, path: Path) -> dict:
    res.trace.save(path)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("protect", [False, True], ids=["shipped", "protect_limit"])
@pytest.mark.parametrize("sizes", [(100, 1, 239, 3, 500), (37,), (2000, 1, 1, 878)], ids=["uneven", "short", "ones"])
@pytest.mark.parametrize("window", [None, (500, 2000)], ids=["all", "inside"])
def test_chunked_backtest_writes_the_in_memory_results(tmp_path, protect, sizes, window):
    market = sample_market(30, BARS)
    rules = _rules(tmp_path, protect)
    s = backtest_settings(compose_config([]), market)
    if window is not None:
        s = dataclasses.replace(s, start=window[0], stop=window[1])
    ref = run_backtest(prepare(market, rules), s)
    assert len(ref.fills) > 40
    if protect:
        assert rules.execution.order_type == "limit"
        assert {f.rule for f in ref.fills} >= {"protect:stop_loss", "protect:time_stop"}
    # the whole market only as its frame: times, symbols and info, no prices
    frame = frame_of(market.timeframe, market.times, market.symbols, market.info, market.source)
    got = run_market_chunks(cut(market, sizes), rules, s, frame)
    assert results_json(got) == results_json(ref)
    a, b = _trace_arrays(ref, tmp_path / "a.npz"), _trace_arrays(got, tmp_path / "b.npz")
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_chunked_backtest_refuses_missing_rows(tmp_path):
    market = sample_market(30, BARS)
    s = backtest_settings(compose_config([]), market)
    with pytest.raises(ValueError, match=f"the chunks hold {BARS - BARS % 100} rows, expected {BARS}"):
        run_market_chunks(cut(market, (100,))[:-1], _rules(tmp_path, False), dataclasses.replace(s, stop=2000),
                          market)
