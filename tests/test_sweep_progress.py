"""engine/progress.py: draws bars processed and ETA on a terminal, nothing anywhere else."""
from __future__ import annotations

import io

import pytest

from engine.progress import Progress, ProgressSettingError, format_duration, progress_enabled, status_line


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quiet_when_not_a_terminal():
    stream = FakeTerminal(tty=False)
    p = Progress("bt", stream=stream)
    for k in range(0, 8784, 512):
        p(k, 8784)
    p.close(8784)
    assert stream.getvalue() == ""
    assert p.draws == 0


def test_draws_bars_and_eta_on_a_terminal():
    stream, clock = FakeTerminal(), FakeClock()
    p = Progress("backtest sma_cross", stream=stream, clock=clock, min_interval=0.0)
    clock.now += 2.0
    p(1000, 4000)  # 500 bars/s, 3000 to go -> 6 s
    out = stream.getvalue()
    assert out.startswith("\rbacktest sma_cross  1,000/4,000 bars")
    assert "25.0%" in out and "500 bars/s" in out and "ETA 6s" in out


def test_redraws_are_throttled():
    stream, clock = FakeTerminal(), FakeClock()
    p = Progress(stream=stream, clock=clock, min_interval=0.25)
    for k in range(100):  # all at the same instant: one draw
        p(k, 100)
    assert p.draws == 1
    clock.now += 0.3
    p(100, 100)
    assert p.draws == 2


def test_close_draws_the_final_state_and_ends_the_line():
    stream, clock = FakeTerminal(), FakeClock()
    with Progress("run", stream=stream, clock=clock, min_interval=0.0) as p:
        clock.now += 1.0
        p(512, 2000)
    out = stream.getvalue()
    assert out.endswith("\n")
    assert "2,000/2,000 bars  100.0%" in out.splitlines()[-1]


def test_shorter_line_blanks_the_tail_of_the_previous_one():
    stream, clock = FakeTerminal(), FakeClock()
    p = Progress(stream=stream, clock=clock, min_interval=0.0)
    clock.now += 1000.0
    p(1, 1_000_000)  # long ETA text
    first = stream.getvalue()
    clock.now += 1.0
    p(10, 10)  # a shorter line: without padding the old tail would stay on screen
    second = stream.getvalue()[len(first):]
    assert len(second) >= len(first)
    assert len(second.rstrip(" ")) < len(first)  # ... so the length comes from the padding


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


def test_status_line_before_any_progress_has_unknown_eta():
    assert status_line("", 0, 10, 0.0).endswith("ETA ?")


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
    assert "1,500/1,500 bars  100.0%" in lines[-1] and lines[-1].endswith("\n")
