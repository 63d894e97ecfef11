"""Factories for market-data tests: small sample specs and OHLCV files in every format."""
from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from engine.market.data import MarketData, iso_utc, timeframe_ms
from engine.market.sample import SampleSpec, generate_sample_market

HOUR_MS = 3_600_000
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HEADER = "date,open,high,low,close,volume"


def small_spec(**overrides) -> SampleSpec:
    """A quick sample spec (30 symbols x 20 days) for tests that do not need a full year."""
    fields = {"seed": 11, "n_symbols": 30, "n_bars": 24 * 20} | overrides
    return SampleSpec(**fields)


@functools.lru_cache(maxsize=None)
def default_sample_market() -> MarketData:
    """The full default sample (40 x 8784), generated once per test process."""
    return generate_sample_market(SampleSpec())


def good_rows(n: int = 6, t0: int = T0_MS, timeframe: str = "1h", price: float = 100.0) -> list[list[float]]:
    """``n`` consistent bars ``[ms, open, high, low, close, volume]`` on the grid."""
    step = timeframe_ms(timeframe)
    rows = []
    close = price
    for i in range(n):
        o = close
        close = o * (1.01 if i % 2 == 0 else 0.995)
        rows.append([t0 + i * step, o, max(o, close) * 1.002, min(o, close) * 0.997, close, 10.0 + i])
    return rows


def csv_text(rows: list[list], date: str = "iso", header: str = HEADER) -> str:
    """CSV body for ``rows``; ``date='iso'`` writes ISO-8601 UTC, ``'ms'`` epoch ms. Cells that
    are already strings are written as given (for broken files)."""
    lines = [header]
    for r in rows:
        cells = list(r)
        if not isinstance(cells[0], str):
            cells[0] = iso_utc(cells[0]) if date == "iso" else str(int(cells[0]))
        lines.append(",".join(c if isinstance(c, str) else repr(c) for c in cells))
    return "\n".join(lines) + "\n"


def write_text(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def frame(rows: list[list]) -> pd.DataFrame:
    """DataFrame with a tz-aware UTC ``date`` like freqtrade's feather files."""
    arr = np.array(rows, dtype=np.float64)
    return pd.DataFrame({
        "date": pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True),
        "open": arr[:, 1], "high": arr[:, 2], "low": arr[:, 3], "close": arr[:, 4], "volume": arr[:, 5],
    })


def file_name(symbol: str, timeframe: str, ext: str) -> str:
    return f"{symbol.replace('/', '_')}-{timeframe}.{ext}"


def write_rows(folder: Path, symbol: str, rows: list[list], fmt: str, timeframe: str = "1h") -> Path:
    """Write one symbol's rows as ``csv`` | ``csv_ms`` | ``parquet`` | ``feather`` | ``json`` | ``json.gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = "csv" if fmt == "csv_ms" else fmt
    path = folder / file_name(symbol, timeframe, ext)
    if fmt in ("csv", "csv_ms"):
        path.write_text(csv_text(rows, date="ms" if fmt == "csv_ms" else "iso"))
    elif fmt == "parquet":
        frame(rows).to_parquet(path)
    elif fmt == "feather":
        frame(rows).to_feather(path)
    elif fmt in ("json", "json.gz"):
        payload = json.dumps([[int(r[0]), *map(float, r[1:])] for r in rows])
        if fmt == "json.gz":
            with gzip.open(path, "wt") as fh:
                fh.write(payload)
        else:
            path.write_text(payload)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return path


def write_market(md: MarketData, folder: Path, fmt: str) -> list[Path]:
    """One file per symbol holding only that symbol's existing bars (NaN rows left out)."""
    paths = []
    for j, symbol in enumerate(md.symbols):
        ok = ~np.isnan(md.close[:, j])
        rows = np.column_stack([md.times[ok].astype(np.float64), md.open[ok, j], md.high[ok, j],
                                md.low[ok, j], md.close[ok, j], md.volume[ok, j]]).tolist()
        for r in rows:
            r[0] = int(r[0])
        paths.append(write_rows(folder, symbol, rows, fmt, md.timeframe))
    return paths


def write_store(md, root, timeframe: str = "1h"):
    """A market store at ``root`` holding ``md``'s bars (its listed rows per symbol)."""
    import numpy as np

    from engine.market.store import MarketStore

    st = MarketStore(root)
    for j, s in enumerate(md.symbols):
        ok = ~np.isnan(md.close[:, j])
        st.write(s, timeframe, np.column_stack([md.times[ok].astype(np.float64), md.open[ok, j], md.high[ok, j],
                                                md.low[ok, j], md.close[ok, j], md.volume[ok, j]]))
    return st
