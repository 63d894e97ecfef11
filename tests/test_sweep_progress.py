"""engine/progress.py: tqdm draws bars processed and ETA on a terminal, nothing anywhere else."""
from __future__ import annotations

import io

import pytest

from engine.progress import Progress, ProgressSettingError, format_duration, progress_enabled


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_quiet_when_not_a_terminal():
    stream = FakeTerminal(tty=False)
    p = Progress("bt", stream=stream)
    for k in range(0, 8784, 512):
        p(k, 8784)
    p.close(8784)
    assert stream.getvalue() == ""
    assert p.draws == 0


def test_draws_bars_and_rate_on_a_terminal():
    stream = FakeTerminal()
    p = Progress("backtest sma_cross", stream=stream, min_interval=0.0)
    p(1000, 4000)
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("backtest sma_cross:  25%|") and "| 1000/4000 [" in last and "bars/s]" in last


def test_redraws_are_throttled():
    stream = FakeTerminal()
    p = Progress(stream=stream, min_interval=3600.0)
    for k in range(100):  # well within the interval: only the first draw
        p(k, 100)
    assert p.draws == 1
    p.close(100)  # the final state is always drawn
    assert p.draws == 2 and " 100/100 " in stream.getvalue().split("\r")[-1]


def test_close_draws_the_final_state_and_ends_the_line():
    stream = FakeTerminal()
    with Progress("run", stream=stream, min_interval=0.0) as p:
        p(512, 2000)
    out = stream.getvalue()
    assert out.endswith("\n")
    assert "run: 100%|" in out.split("\r")[-1] and "2000/2000" in out.split("\r")[-1]


def test_an_error_leaves_the_line_where_it_stopped():
    stream = FakeTerminal()
    with pytest.raises(RuntimeError), Progress("run", stream=stream, min_interval=0.0) as p:
        p(512, 2000)
        raise RuntimeError("boom")
    last = stream.getvalue().split("\r")[-1]
    assert " 512/2000 " in last and last.endswith("\n")


def test_the_env_override_draws_into_a_pipe():
    stream = FakeTerminal(tty=False)
    p = Progress("bt", stream=stream, enabled=progress_enabled(stream, env={"RULEBOOK_PROGRESS": "always"}),
                 min_interval=0.0)
    p(5, 10)
    assert p.draws >= 1 and "5/10" in stream.getvalue()


@pytest.mark.parametrize("value,tty,expected", [("always", False, True), ("never", True, False),
                                               ("auto", True, True), ("auto", False, False), ("", True, True)])
def test_env_override(value, tty, expected):
    assert progress_enabled(FakeTerminal(tty), env={"RULEBOOK_PROGRESS": value}) is expected


def test_bad_env_value_names_the_variable():
    with pytest.raises(ProgressSettingError, match="RULEBOOK_PROGRESS is 'sometimes'; expected one of auto, always, never"):
        progress_enabled(FakeTerminal(), env={"RULEBOOK_PROGRESS": "sometimes"})


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59.4, "59s"), (75, "1m15s"), (3725, "1h02m"),
                                          (float("inf"), "?"), (float("nan"), "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_backtest_loop_drives_it(tmp_path):
    """run_backtest(p, s, progress) reports bars processed; close() ends at 100%."""
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_market, load_rules
    from tests.helpers.runs import compose_config
    from tests.helpers.sweep import SMALL_MARKET

    cfg = compose_config([*SMALL_MARKET, f"data.cache_dir={tmp_path}"])
    market = load_market(cfg["data"])
    settings = backtest_settings(cfg, market)
    stream = FakeTerminal()
    with Progress("backtest", stream=stream, min_interval=0.0) as progress:
        run_backtest(prepare(market, load_rules(cfg)), settings, progress=progress)
    lines = stream.getvalue().split("\r")
    assert progress.draws >= 3  # every 512 bars of 1,500, then the final state
    assert "100%|" in lines[-1] and "1500/1500" in lines[-1] and lines[-1].endswith("\n")
