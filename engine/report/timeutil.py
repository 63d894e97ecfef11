"""ISO-8601 UTC strings <-> epoch milliseconds, whole-array (numpy datetime64)."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from engine.report.errors import ReportError


def iso_to_ms(values: Iterable[str], where: str = "times") -> np.ndarray:
    """``["2024-01-01T05:00:00Z", ...]`` -> int64 epoch ms. Raises ReportError naming ``where``."""
    vals = list(values)
    stripped = [v[:-1] if isinstance(v, str) and v.endswith("Z") else v for v in vals]
    try:
        return np.array(stripped, dtype="datetime64[ms]").astype(np.int64)
    except (ValueError, TypeError) as exc:
        bad = next((v for v in vals if not _parses(v)), vals[:1])
        raise ReportError(f"{where}: cannot read {bad!r} as a time; expected ISO-8601 UTC like "
                          f"'2024-01-01T05:00:00Z' ({exc})") from None


def _parses(v: object) -> bool:
    try:
        np.datetime64(v[:-1] if isinstance(v, str) and v.endswith("Z") else v, "ms")
        return True
    except (ValueError, TypeError):
        return False


def ms_to_iso(ms: Sequence[int] | np.ndarray) -> list[str]:
    """int64 epoch ms -> ``YYYY-MM-DDTHH:MM:SSZ`` strings."""
    arr = np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(arr, unit="s").tolist()]
