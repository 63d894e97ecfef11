"""What results.json and trace.npz read of the prepared run, gathered chunk by chunk (a chunked
backtest's path) is bit for bit what the whole run in memory gives (its one-chunk case):
engine/sim/summary.py, engine/trace.py ``add_chunk``, engine/report/metrics.py ``BuyAndHold``."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from engine.report.metrics import BuyAndHold, buy_and_hold, buy_and_hold_exposure
from engine.sim.summary import RunSummary
from engine.trace import TraceRecorder
from tests.helpers.backtest import prepared_run, results_json
from tests.helpers.prepared_rows import row_chunks

LAYOUTS = ((1, 1, 5, 400, 10_000), (700,) * 5, (2879, 1), (97,) * 30)


@pytest.fixture(scope="module")
def run():
    p, s = prepared_run(("backtest.start=2024-01-05",))
    return p, s, run_backtest(p, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_results_and_trace_from_chunks_equal_the_whole_run(run, layout, tmp_path):
    p, s, res = run
    assert res.start > 0  # the window starts inside the first chunks: their rows before it are skipped
    chunks = row_chunks(p, layout)
    summary = RunSummary(res.start, res.stop, s.initial_cash)
    trace = TraceRecorder(p, res.start, res.stop, chunked=True)
    for c in chunks:
        summary.add(c, c.extra["row0"])
        trace.add_chunk(c, c.extra["row0"])
    trace.logs, trace.halts = res.trace.logs, res.trace.halts  # the loop's records, as they were
    assert results_json(dataclasses.replace(res, summary=summary, trace=trace)) == \
        results_json(dataclasses.replace(res, summary=None))
    trace.save(tmp_path / "chunks.npz")
    res.trace.save(tmp_path / "whole.npz")
    assert (tmp_path / "chunks.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()


def _closes() -> np.ndarray:
    rng = np.random.default_rng(1)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (500, 13)), axis=0))
    px[:40] = np.nan  # no data yet: cash
    px[rng.random(px.shape) < 0.1] = np.nan  # gaps: the last known close
    px[:60, 3] = np.nan  # listed late: never bought
    return px


def test_buy_and_hold_in_row_blocks_is_the_whole_arrays(monkeypatch):
    """A long panel is stepped in row blocks (small temporaries): the same bits as in one."""
    from engine.report import metrics

    px = _closes()
    whole = buy_and_hold(np.arange(500), px, 1000.0)
    calls = []
    real = BuyAndHold.step
    monkeypatch.setattr(BuyAndHold, "step", lambda self, p: calls.append(len(p)) or real(self, p))
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 1)  # blocks of the 256-row floor
    assert buy_and_hold(np.arange(500), px, 1000.0).tobytes() == whole.tobytes()
    assert calls == [500, 256, 244]


def test_buy_and_hold_streams_bit_for_bit_over_any_rows():
    px = _closes()
    whole = buy_and_hold(np.arange(500), px, 1000.0)
    for layout in ((500,), (1,) * 45 + (455,), (7, 33, 100, 360), (1,) * 500):
        bh, eq, ex, a = BuyAndHold(1000.0), [], [], 0
        for size in layout:
            e, x = bh.step(px[a:a + size])
            eq.append(e)
            ex.append(x)
            a += size
        # one-row chunks too: numpy's sum(axis=1) changes its order with the row count, the
        # benchmark's left-to-right row sum does not
        assert np.concatenate(eq).tobytes() == whole.tobytes(), layout
        assert np.array_equal(np.concatenate(ex), buy_and_hold_exposure(px))
