"""mode=dry_run|paper|live: the cycle on a live clock (engine/live), then the backtest's report.

The one place a live-clock mode's parts are chosen: the clock (the in-process emulator's
simulated clock, or the wall clock), the feed (the exchange adapter) and the broker (the mode's
plan in the engine/modes registry)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from engine import run_warnings
from engine.backtest.diagnostics import participation_cap
from engine.exchange.adapter import ExchangeAdapter
from engine.exchange.config import ExchangeConfig
from engine.exchange.errors import ExchangeError
from engine.live.clock import SimClock, StepClock, WallClock
from engine.live.errors import LiveError
from engine.live.loop import Session
from engine.live.report import live_results
from engine.live.settings import LiveSettings
from engine.modes import LIVE_MODES, live_plan
from engine.modes.setup import load_rules, run_identity

log = logging.getLogger(__name__)


def exchange_config(cfg: Mapping[str, Any]) -> ExchangeConfig:
    ex = dict(cfg.get("exchange") or {})
    ex.pop("fees", None)  # read by the fee model, not (yet) by ExchangeConfig
    try:
        return ExchangeConfig.from_mapping(ex)
    except ExchangeError as e:
        raise LiveError(str(e)) from None


def make_clock(settings: LiveSettings, xcfg: ExchangeConfig, adapter):
    kind = settings.clock
    if kind == "auto":
        if adapter.emulator is not None and not adapter.emulator.market.speed:
            kind = "step"  # an in-process emulator in step mode moves only when the session asks
        else:
            kind = "sim" if (adapter.emulator is not None or settings.sim_origin_ms is not None) else "wall"
    if kind == "wall":
        return WallClock(settings.settle_s)
    if kind == "step":
        emu = adapter.emulator
        if emu is None or emu.market.speed:
            raise LiveError("live.clock=step moves the in-process emulator's market bar by bar: it needs "
                            "exchange=local_sim (emulator.autostart) with exchange.emulator.speed=null")
        return StepClock(emu)
    speed = settings.sim_speed or xcfg.emulator.speed
    emu = adapter.emulator
    if emu is not None:
        def resume(ms: int) -> None:  # advance the in-process market to the account's newest bar
            emu.advance(max(0, -(-(ms - emu.market.now_ms()) // emu.market.step_ms)))
        return SimClock(speed, emu.market.now_ms, resume)
    if settings.sim_origin_ms is None or settings.sim_origin_wall_s is None:
        raise LiveError("live.clock=sim with an emulator in another process needs live.sim_origin_ms and "
                        "live.sim_origin_wall_s (its simulated time at a wall time)")
    return SimClock.from_origin(speed, int(settings.sim_origin_ms), float(settings.sim_origin_wall_s))


def open_session(cfg: Mapping[str, Any], mode: str | None = None) -> Session:
    mode = mode or (cfg.get("mode") or {}).get("name")
    if mode not in LIVE_MODES:
        raise LiveError(f"mode.name is {mode!r}; the live loop runs {', '.join(LIVE_MODES)}")
    plan = live_plan(mode)
    settings = LiveSettings.from_mapping(cfg.get("live"))
    xcfg = exchange_config(cfg)
    try:
        adapter = ExchangeAdapter(xcfg)
    except ExchangeError as e:
        raise LiveError(str(e)) from None
    try:
        timeframe = settings.timeframe or ("1m" if adapter.emulator is not None else (cfg.get("data") or {}).get("timeframe", "1h"))
        return Session(plan, cfg, settings, adapter, make_clock(settings, xcfg, adapter), timeframe, load_rules)
    except BaseException:
        adapter.close()
        raise


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    t0 = time.perf_counter()
    s = open_session(cfg)
    try:
        try:
            summary = s.run()
        except ExchangeError as e:  # after the allowed retries (or a wrong key): one message, no traceback
            raise LiveError(f"{s.mode} session stopped, an exchange call failed: {e}. Every completed step is in "
                            f"{s.store.path}; a restart reconciles with the exchange") from None
        from engine.live import feed
        market = feed.panel(s.store, s.timeframe, s.symbols, s.info, f"live:{s.mode}")
        info = run_identity(cfg, market, s.reloader.rules, overrides, redacted)
        info.update(mode=s.mode, account=s.settings.account, state_file=str(s.store.path), session=summary)
        results = live_results(s, info)
        if results is not None:
            # the backtest's own warning when paper's or dry_run's fill model cut fills (live: none)
            found = participation_cap(results)
            for d in found:
                log.warning("%s: %s", d.code, d.message)
            results["diagnostics"] = run_warnings.as_dicts(run_warnings.noted() + found)
    finally:
        s.adapter.close()
        s.store.close()
    if results is None:
        log.warning("%s session ran no cycle: no report written", s.mode)
        return {"session": summary}
    from engine.report.outputs import write_run_outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_run_outputs(out_dir, results, timing={"elapsed_seconds": round(time.perf_counter() - t0, 3)})
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return results
