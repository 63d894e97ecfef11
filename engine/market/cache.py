"""MarketData on disk: one uncompressed ``.npz`` per panel, written atomically.

A cache file carries the key it was built for and the data hash it had; a file whose key
does not match, or that fails to read or to verify, is treated as a miss and rebuilt (with a
warning), never trusted and never a crash.
"""
from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.fileio import atomic_write
from engine.market.data import MarketData, SymbolInfo

log = logging.getLogger(__name__)

_ARRAYS = ("open", "high", "low", "close", "volume", "spread_bps")
FORMAT_VERSION = 2  # 2: the row-major data hash (engine.market.data.DataHash)


def save_market(md: MarketData, path: Path | str, key: str = "") -> Path:
    """Write ``md`` to ``path`` via a temp file in the same folder + ``os.replace``.

    Readers therefore see either the old file or the complete new one, even if two runs
    (e.g. a Hydra multirun's workers) build the same cache at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "timeframe": md.timeframe,
        "symbols": list(md.symbols),
        "info": [asdict(i) for i in md.info],
        "source": md.source,
        "true_regime_labels": list(md.true_regime_labels),
        "data_hash": md.data_hash(),
    }
    arrays = {name: np.ascontiguousarray(getattr(md, name), dtype=np.float64) for name in _ARRAYS}
    arrays["times"] = np.ascontiguousarray(md.times, dtype=np.int64)
    if md.true_regime is not None:
        arrays["true_regime"] = np.ascontiguousarray(md.true_regime, dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_market_file(path: Path | str, key: str | None = None, verify: bool = True) -> MarketData | None:
    """Read a panel written by ``save_market``; None if missing, stale (other key) or damaged."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format_version") != FORMAT_VERSION or (key is not None and meta.get("key") != key):
                log.warning("market cache %s was built for other settings; rebuilding", path)
                return None
            arrays = {name: z[name] for name in _ARRAYS}
            times = z["times"]
            regime = z["true_regime"] if "true_regime" in z.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        log.warning("market cache %s is unreadable (%s); rebuilding", path, exc)
        return None
    try:
        md = MarketData(
            timeframe=meta["timeframe"], times=times, symbols=tuple(meta["symbols"]),
            info=tuple(SymbolInfo(**i) for i in meta["info"]), source=meta["source"],
            true_regime=regime, true_regime_labels=tuple(meta["true_regime_labels"]), **arrays,
        )
    except (TypeError, ValueError, KeyError) as exc:
        log.warning("market cache %s does not hold a valid panel (%s); rebuilding", path, exc)
        return None
    if verify and md.data_hash() != meta.get("data_hash"):
        log.warning("market cache %s failed its data hash check; rebuilding", path)
        return None
    return md


def cached_market(path: Path | str, key: str, build: Callable[[], MarketData]) -> MarketData:
    """Return the panel cached at ``path`` for ``key``, building and saving it on a miss."""
    md = load_market_file(path, key=key)
    if md is not None:
        return md
    md = build()
    save_market(md, path, key=key)
    return md
