"""What a backtest on the sample market would refuse at start, known without building it.

The sample market's settings (data.sample) and so its bar times follow from the config alone:
mode=validate checks them, and the backtest window against them, with the run's own code and
message (engine/market/sample.py SampleSpec, engine/market/window.py window_of). For a file source
the folder's listing is checked (the folder, a file per symbol asked for, links inside it:
engine/market/loaders.py select_files); the files' contents, and so their span, are read at the
run's start.
"""
from __future__ import annotations

from typing import Any

from . import paths
from .problems import ConfigProblem

DATA_MODES = frozenset({"backtest", "validate"})  # the modes that read `data` (sanity_checks.yaml)


def check_data_span(cfg: dict, mode: str, known_bad: list[str]) -> list[ConfigProblem]:
    if mode not in DATA_MODES:
        return []
    if any(paths.overlaps(p, bad) for p in ("data", "backtest") for bad in known_bad):
        return []  # the schema already said what is wrong there
    source = paths.get(cfg, "data.source", None)
    if source != "sample":
        return _check_files(cfg, source)
    import numpy as np

    from engine.errors import UserError
    from engine.market.data import TIMEFRAME_MS
    from engine.market.sample import SampleSpec, SampleSpecError
    from engine.market.window import window_of

    sample: Any = paths.get(cfg, "data.sample", None)
    timeframe = paths.get(cfg, "data.timeframe", "1h")
    if not isinstance(sample, dict):
        return []  # sanity check sample_data_needs_sample_section
    try:
        spec = SampleSpec.from_mapping({**sample, "timeframe": timeframe})
    except SampleSpecError as exc:
        path, _, said = str(exc).partition(": ")  # "data.sample.start: found '...', expected ..."
        return [ConfigProblem("sample_spec", path, paths.show(paths.get(cfg, path, None)),
                              said.rpartition("expected ")[2] or "what the sample generator accepts", said)]
    times = spec.start_ms + np.arange(spec.n_bars, dtype=np.int64) * TIMEFRAME_MS[spec.timeframe]
    try:
        window_of(times, paths.get(cfg, "backtest", {}) or {})
    except UserError as exc:
        bt = paths.get(cfg, "backtest", {}) or {}
        key = "backtest.start" if bt.get("start") is not None else "backtest.end"
        return [ConfigProblem("backtest_window", key, f"{bt.get('start')} .. {bt.get('end')}",
                              f"a window inside the sample's bars ({spec.start} and {spec.n_bars} bars of "
                              f"{spec.timeframe})", str(exc))]
    return []


def _check_files(cfg: dict, source: Any) -> list[ConfigProblem]:
    from engine.market.loaders import SOURCES, select_files
    from engine.market.validate import DataError
    from engine.paths import project_path

    path = paths.get(cfg, "data.path", None)
    if source not in SOURCES or not isinstance(path, str) or not path:
        return []  # the schema and sanity check file_data_needs_path said why
    symbols = paths.get(cfg, "data.symbols", None)
    try:
        select_files(source, project_path(path), paths.get(cfg, "data.timeframe", "1h"),
                     list(symbols) if isinstance(symbols, list) and symbols else None)
    except DataError as exc:
        return [ConfigProblem("data_files", "data.path", repr(path), f"a folder of {source} files", str(exc))]
    return []
