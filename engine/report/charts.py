"""Inline SVG charts, generated in Python: no script library, no font, no request.

Charts take whole arrays (epoch-ms x values) and are downsampled before drawing so a
year of hourly bars stays a few tens of kilobytes per curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

import numpy as np

DAY_MS = 86_400_000
PALETTE = ("#2563eb", "#9ca3af", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04")
REGIME_COLOURS = {"bull": "#dcfce7", "bear": "#fee2e2", "chop": "#fef9c3", "sideways": "#fef9c3",
                  "crash": "#fecaca", "recovery": "#e0f2fe", "unknown": "#f3f4f6"}
EXTRA_REGIME_COLOURS = ("#ede9fe", "#e0f2fe", "#fce7f3", "#ecfccb", "#ffedd5", "#f1f5f9")


@dataclass
class Series:
    name: str
    x: np.ndarray  # epoch ms
    y: np.ndarray
    colour: str = PALETTE[0]
    area: bool = False  # fill between the line and zero
    width: float = 1.5


@dataclass
class Band:
    start_ms: int
    end_ms: int
    label: str


@dataclass
class Frame:
    """Pixel geometry of one chart."""
    width: int = 960
    height: int = 260
    left: int = 70
    right: int = 16
    top: int = 14
    bottom: int = 26
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0
    extra: dict = field(default_factory=dict)

    def px(self, x: np.ndarray) -> np.ndarray:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (np.asarray(x, dtype=np.float64) - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: np.ndarray) -> np.ndarray:
        span = (self.y1 - self.y0) or 1.0
        return self.top + (self.y1 - np.asarray(y, dtype=np.float64)) / span * (self.height - self.top - self.bottom)


def downsample_minmax(x: np.ndarray, y: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's min and max (in time order) so peaks and troughs survive.

    Returns at most ``max_points`` real samples of the input (plus the last point).
    """
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    size = math.ceil(n / buckets)
    pad = buckets * size - n
    yy = np.concatenate([y, np.full(pad, y[-1])]).reshape(buckets, size)
    finite = np.isfinite(yy)
    lo = np.argmin(np.where(finite, yy, np.inf), axis=1)
    hi = np.argmax(np.where(finite, yy, -np.inf), axis=1)
    base = np.arange(buckets) * size
    idx = np.concatenate([base + np.minimum(lo, hi), base + np.maximum(lo, hi), [n - 1]])
    idx = np.unique(np.clip(idx, 0, n - 1))
    return x[idx], y[idx]


def nice_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return np.array([0.0])
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * next(m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return np.arange(start, hi + step * 1e-9, step)


def time_ticks(x0: int, x1: int, max_ticks: int = 8) -> list[tuple[int, str]]:
    """Round-time tick positions (ms) and labels covering [x0, x1]."""
    span = max(x1 - x0, 1)
    t0 = np.datetime64(int(x0), "ms")
    t1 = np.datetime64(int(x1), "ms")
    if span > 62 * DAY_MS:
        for months in (1, 2, 3, 6, 12, 24, 60):
            if span / (months * 30.4 * DAY_MS) <= max_ticks:
                break
        first = t0.astype("datetime64[M]") + 1
        ticks = np.arange(first, t1.astype("datetime64[M]") + 1, months)
        ticks = ticks[(ticks.astype("datetime64[M]").astype(int) % months) == 0] if months > 1 else ticks
        fmt = lambda t: str(t)  # noqa: E731  'YYYY-MM'
        return [(int(t.astype("datetime64[ms]").astype(np.int64)), fmt(t)) for t in ticks]
    for days in (1 / 24, 3 / 24, 6 / 24, 12 / 24, 1, 2, 7, 14, 28):
        if span / (days * DAY_MS) <= max_ticks:
            break
    step = int(days * DAY_MS)
    start = (int(x0) // step + 1) * step
    ticks = np.arange(start, int(x1) + 1, step, dtype=np.int64)
    unit = "m" if days < 1 else "D"
    labels = np.datetime_as_string(ticks.astype("datetime64[ms]"), unit=unit)
    return [(int(t), (s[5:].replace("T", " ") if days < 1 else s[5:])) for t, s in zip(ticks, labels)]


def fmt_value(v: float, kind: str) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    if abs(v) < 1e-12:
        v = 0.0  # tick arithmetic leaves -0.0 and 1e-17
    if kind == "pct":
        return f"{v * 100:.0f}%" if abs(v) >= 0.1 or v == 0 else f"{v * 100:.1f}%"
    if kind == "money":
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return f"{v:g}"


def _path(fr: Frame, x: np.ndarray, y: np.ndarray) -> str:
    px, py = fr.px(x), fr.py(y)
    ok = np.isfinite(py)
    parts, pen_down = [], False
    for a, b, good in zip(px.round(1).tolist(), py.round(1).tolist(), ok.tolist()):
        if not good:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{a:g} {b:g}")
        pen_down = True
    return "".join(parts)


def line_chart(series: Sequence[Series], *, title: str, y_kind: str = "money", bands: Sequence[Band] = (),
               height: int = 260, y_floor: float | None = None, y_ceiling: float | None = None,
               max_points: int = 2000, chart_id: str = "chart") -> str:
    """An SVG line/area chart of time series sharing one time axis, bands drawn behind."""
    fr = Frame(height=height)
    drawn = [(s, *downsample_minmax(s.x, s.y, max_points)) for s in series if len(s.x)]
    if not drawn:
        return f'<p class="empty">{escape(title)}: no data</p>'
    xs = np.concatenate([d[1] for d in drawn]).astype(np.float64)
    ys = np.concatenate([d[2] for d in drawn])
    ys = ys[np.isfinite(ys)]
    fr.x0, fr.x1 = float(xs.min()), float(xs.max())
    lo = float(ys.min()) if ys.size else 0.0
    hi = float(ys.max()) if ys.size else 1.0
    if any(s.area for s in series):
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if y_floor is not None:
        lo = min(lo, y_floor)
    if y_ceiling is not None:
        hi = max(hi, y_ceiling)
    pad = (hi - lo) * 0.04 or abs(hi) * 0.01 or 1.0
    ticks = nice_ticks(lo - (pad if not any(s.area for s in series) else 0), hi + pad)
    fr.y0, fr.y1 = float(min(ticks[0], lo)), float(max(ticks[-1], hi))
    out = [f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {fr.width} {fr.height}" '
           f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    plot_w, plot_h = fr.width - fr.left - fr.right, fr.height - fr.top - fr.bottom
    for b in bands:
        a, z = fr.px([max(b.start_ms, fr.x0), min(b.end_ms, fr.x1)])
        if z <= a:
            continue
        out.append(f'<rect class="band" x="{a:.1f}" y="{fr.top}" width="{z - a:.1f}" height="{plot_h}" '
                   f'fill="{regime_colour(b.label)}"><title>{escape(b.label)}</title></rect>')
    for t in ticks:
        y = float(fr.py([t])[0])
        out.append(f'<line class="grid" x1="{fr.left}" x2="{fr.left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="ylab" x="{fr.left - 6}" y="{y + 4:.1f}">{escape(fmt_value(float(t), y_kind))}</text>')
    for t, label in time_ticks(int(fr.x0), int(fr.x1)):
        x = float(fr.px([t])[0])
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{fr.top + plot_h}" y2="{fr.top + plot_h + 4}"/>'
                   f'<text class="xlab" x="{x:.1f}" y="{fr.height - 6}">{escape(label)}</text>')
    for s, x, y in drawn:
        d = _path(fr, x, y)
        if s.area and d:
            zero = float(fr.py([0.0])[0])
            px = fr.px(x)
            out.append(f'<path class="area" d="{d}L{px[-1]:.1f} {zero:.1f}L{px[0]:.1f} {zero:.1f}Z" '
                       f'fill="{s.colour}" fill-opacity="0.25" stroke="none"/>')
        out.append(f'<path class="line" d="{d}" fill="none" stroke="{s.colour}" stroke-width="{s.width}">'
                   f"<title>{escape(s.name)}</title></path>")
    out.append(f'<rect class="frame" x="{fr.left}" y="{fr.top}" width="{plot_w}" height="{plot_h}" fill="none"/>')
    out.append("</svg>")
    legend = [(s.name, s.colour, "line") for s in series]
    seen: dict[str, None] = {}
    for b in bands:
        seen.setdefault(b.label)
    legend += [(label, regime_colour(label), "band") for label in seen]
    return "".join(out) + legend_html(legend)


def regime_colour(label: str) -> str:
    if label in REGIME_COLOURS:
        return REGIME_COLOURS[label]
    # unknown labels get a stable colour from their text (not from Python's salted hash)
    return EXTRA_REGIME_COLOURS[sum(label.encode()) % len(EXTRA_REGIME_COLOURS)]


def legend_html(items: Sequence[tuple[str, str, str]]) -> str:
    spans = "".join(f'<span class="key {kind}"><i style="background:{colour}"></i>{escape(name)}</span>'
                    for name, colour, kind in items)
    return f'<div class="legend">{spans}</div>'


def scatter_chart(x: Sequence, y: Sequence[float | None], *, x_name: str, y_name: str, y_kind: str = "num",
                  labels: Sequence[str] = (), highlight: int | None = None, height: int = 220) -> str:
    """Metric (y) against one swept parameter (x): numeric x on a linear axis, else categories."""
    fr = Frame(height=height, width=460, left=64)
    yv = np.array([np.nan if v is None else float(v) for v in y], dtype=np.float64)
    numeric = all(_is_number(v) for v in x)
    if numeric:
        xv = np.array([float(v) for v in x], dtype=np.float64)
        cats: list[str] = []
    else:
        cats = sorted({str(v) for v in x}, key=_natural)
        xv = np.array([cats.index(str(v)) for v in x], dtype=np.float64)
    ok = np.isfinite(yv)
    if not ok.any():
        return f'<p class="empty">{escape(y_name)}: no values</p>'
    fr.x0, fr.x1 = float(xv.min()), float(xv.max())
    if fr.x1 == fr.x0 or not numeric:
        fr.x0, fr.x1 = fr.x0 - 0.5, fr.x1 + 0.5
    else:
        padx = (fr.x1 - fr.x0) * 0.05
        fr.x0, fr.x1 = fr.x0 - padx, fr.x1 + padx
    lo, hi = float(yv[ok].min()), float(yv[ok].max())
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    ticks = nice_ticks(lo - pad, hi + pad, 4)
    fr.y0, fr.y1 = float(min(ticks[0], lo - pad)), float(max(ticks[-1], hi + pad))
    plot_w, plot_h = fr.width - fr.left - fr.right, fr.height - fr.top - fr.bottom
    out = [f'<svg class="chart scatter" viewBox="0 0 {fr.width} {fr.height}" role="img" '
           f'aria-label="{escape(y_name)} against {escape(x_name)}" xmlns="http://www.w3.org/2000/svg">']
    for t in ticks:
        yy = float(fr.py([t])[0])
        out.append(f'<line class="grid" x1="{fr.left}" x2="{fr.left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
                   f'<text class="ylab" x="{fr.left - 6}" y="{yy + 4:.1f}">{escape(fmt_value(float(t), y_kind))}</text>')
    xticks = [(float(i), c) for i, c in enumerate(cats)] if not numeric else \
        [(float(t), f"{t:g}") for t in nice_ticks(float(xv.min()), float(xv.max()) if xv.max() > xv.min() else float(xv.min()) + 1, 4)]
    for t, label in xticks:
        if not fr.x0 <= t <= fr.x1:
            continue
        xx = float(fr.px([t])[0])
        out.append(f'<text class="xlab" x="{xx:.1f}" y="{fr.height - 6}">{escape(label)}</text>')
    px, py = fr.px(xv), fr.py(np.where(ok, yv, 0))
    for i in np.flatnonzero(ok).tolist():
        cls = "pt best" if i == highlight else "pt"
        tip = f"{labels[i] if i < len(labels) else i}: {x_name}={x[i]}, {y_name}={fmt_value(yv[i], y_kind)}"
        out.append(f'<circle class="{cls}" cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="{6 if i == highlight else 4}">'
                   f"<title>{escape(tip)}</title></circle>")
    out.append(f'<rect class="frame" x="{fr.left}" y="{fr.top}" width="{plot_w}" height="{plot_h}" fill="none"/>')
    out.append(f'<text class="axis-name" x="{fr.left + plot_w / 2:.0f}" y="{fr.top + 12}">{escape(x_name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _is_number(v: object) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return math.isfinite(v)
    try:
        return math.isfinite(float(str(v)))
    except ValueError:
        return False


def _natural(s: str) -> tuple:
    import re
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))
