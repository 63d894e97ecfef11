"""Report settings (conf/report/*.yaml -> ReportOptions)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from engine.report.errors import ReportError


@dataclass(frozen=True)
class ReportOptions:
    html: bool = True  # write report.html
    csv: bool = True  # write trades.csv, fills.csv, equity.csv
    max_chart_points: int = 2000  # per curve, after min/max downsampling
    max_table_rows: int = 5000  # trades shown in the HTML table (all of them go to trades.csv)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "ReportOptions":
        """Build from the ``report`` config group; unknown or mistyped keys are errors."""
        if cfg is None:
            return cls()
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in dict(cfg).items():
            if key == "name" or key.startswith("_"):
                continue
            if key not in known:
                raise ReportError(f"report.{key}: unknown key; expected one of {', '.join(sorted(known))}")
            want = bool if known[key].type in ("bool", bool) else int
            if want is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ReportError(f"report.{key} is {value!r}; expected a positive integer")
            if want is bool and not isinstance(value, bool):
                raise ReportError(f"report.{key} is {value!r}; expected true or false")
            values[key] = value
        return cls(**values)
