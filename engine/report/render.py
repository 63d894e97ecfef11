"""Jinja2 rendering of the HTML reports from the templates in ``reports/``.

The templates get plain data (dicts, lists, strings, pre-built inline SVG); the CSS and
JavaScript under ``reports/static/`` are inlined so each report is one offline file.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from engine.paths import TEMPLATES_DIR  # noqa: E402  (the built-in reports/, also in a wheel)


def fmt(value: Any, kind: str = "num") -> str:
    """Human format for a metric value; ``None`` (undefined) shows as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{int(value):,d}"
    if kind == "hours":
        return f"{value:,.1f} h"
    if kind == "time" or isinstance(value, str):
        return str(value).replace("T", " ").replace("Z", " UTC")
    if isinstance(value, int):
        return f"{value:,d}"
    return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"


def sort_value(value: Any) -> str:
    """The data-v attribute the table sorter compares (numbers as numbers, None last)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def heat_colour(r: float | None) -> str:
    """Background for a monthly-return cell: red for losses, green for gains, saturating at 20%."""
    if r is None:
        return "#f9fafb"
    a = min(abs(r) / 0.2, 1.0)
    base = (22, 163, 74) if r >= 0 else (220, 38, 38)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 + (c - 255) * a * 0.85) for c in base))


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (compiling backtest.html.j2 is 35-90 ms of each run's
    start-up, more on a loaded machine: ``python benchmarks/claims.py``). Jinja's per-user cache in the temp directory: entries are keyed by template name
    and checked against the source's checksum and the Python version, so an edited template
    or another interpreter never reads a stale one. None (compile every run) when the
    directory cannot be used."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@lru_cache(maxsize=4)
def environment(templates_dir: str = str(TEMPLATES_DIR)) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        bytecode_cache=_bytecode_cache(),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["sv"] = sort_value
    env.filters["heat"] = heat_colour
    return env


def static_text(name: str, templates_dir: Path = TEMPLATES_DIR) -> Markup:
    text = (Path(templates_dir) / "static" / name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"reports/static/{name} must not contain a closing script/style tag")
    return Markup(text)


def render(template: str, context: dict[str, Any], templates_dir: Path = TEMPLATES_DIR) -> str:
    ctx = dict(context)
    ctx.setdefault("css", static_text("report.css", templates_dir))
    ctx.setdefault("js", static_text("report.js", templates_dir))
    return environment(str(templates_dir)).get_template(template).render(ctx)
