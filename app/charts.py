"""Charts for self-contained HTML reports: inline SVG with real axes, no script, no CDN.

A report must open offline, years later, from a mail attachment: so every chart is plain SVG
written here — a line chart over time (dates in IST on the x axis, values formatted by
``app.readable`` on the y axis, optional entry/exit markers) and a heat table (monthly
returns). Run reports use it today; a study report reuses the same pieces.

Bars of a market are not spread evenly over time (nights, weekends, holidays), so the x axis
is bar order — no empty weekends — labelled with the IST date (or time of day, for a span
within one day) at evenly spread bars; a marker sits on the bar whose time it carries.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from config.sessions import IST

Formatter = Callable[[float], str]

WIDTH, HEIGHT = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 10, 38  # plot margins: room for the axes' labels
MAX_POINTS = 3000  # a polyline longer than this is thinned


@dataclass(frozen=True)
class Series:
    """One line: values aligned with the chart's timestamps."""

    values: np.ndarray
    color: str = "#1f6feb"
    label: str = ""


@dataclass(frozen=True)
class Marker:
    """A point on the chart at a time (an entry or an exit), with its tooltip."""

    ts_ns: int
    value: float
    kind: str  # "entry" or "exit": the CSS class, the shape (▲ / ▼) and the colour
    title: str


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round values (1, 2, 2.5, 5 × a power of ten apart) from at or below ``lo`` to at or
    above ``hi``: the y axis then starts and ends on a labelled value."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [0.0 if k == 0 else k * step for k in range(first, last + 1)]


def time_ticks(ts_ns: np.ndarray, count: int = 6) -> list[tuple[int, str]]:
    """(bar index, label) pairs for the x axis: IST dates, or times of day when the series
    lies within one day; spread evenly over the bars, each label once."""
    if ts_ns.size == 0:
        return []
    local = pd.to_datetime(ts_ns, utc=True).tz_convert(IST)
    one_day = local[0].date() == local[-1].date()
    fmt = "%H:%M" if one_day else "%Y-%m-%d"
    picks = np.unique(np.linspace(0, ts_ns.size - 1, min(count, ts_ns.size)).round().astype(int))
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index in picks.tolist():
        label = local[index].strftime(fmt)
        if label not in seen:
            seen.add(label)
            out.append((index, label))
    return out


def _thin(count: int) -> np.ndarray:
    """Indices of the points drawn: all, or ``MAX_POINTS`` evenly spread (three points per
    pixel of a 900-pixel chart: more would not show)."""
    if count <= MAX_POINTS:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, MAX_POINTS).round().astype(np.int64))


def line_chart(
    ts_ns: np.ndarray,
    series: Sequence[Series],
    y_format: Formatter,
    *,
    markers: Sequence[Marker] = (),
    chart_id: str = "",
    title: str = "",
    height: int = HEIGHT,
    fill_to_zero: bool = False,
) -> str:
    """An SVG line chart over time with labelled axes; ``markers`` drawn on their bars."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if ts_ns.size < 2 or not series:
        return f'<p class="empty" id="{html.escape(chart_id)}">(not enough points to draw)</p>'
    values = [np.asarray(s.values, dtype=float) for s in series]
    finite = np.concatenate(
        [v[np.isfinite(v)] for v in values] + [np.array([m.value for m in markers])]
    )
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if fill_to_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    ticks = nice_ticks(lo, hi)
    if ticks:
        lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    last = ts_ns.size - 1

    def x(index: float) -> float:
        return LEFT + index / last * plot_w

    def y(value: float) -> float:
        return TOP + (hi - value) / (hi - lo) * plot_h

    parts = [
        f'<svg class="chart" id="{html.escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{html.escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="system-ui,sans-serif">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#d0d7de"/>',
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="#eaeef2"/><text class="y-tick" x="{LEFT - 6}" y="{ty + 4:.1f}" '
            f'text-anchor="end">{html.escape(y_format(tick))}</text>'
        )
    for index, label in time_ticks(ts_ns):
        tx = x(index)
        anchor = "end" if index == last else "middle"  # the last label stays inside the chart
        parts.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" '
            f'stroke="#57606a"/><text class="x-tick" x="{tx:.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="{anchor}">{html.escape(label)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{height - 4}" text-anchor="end" fill="#57606a">'
        "time (IST)</text>"
    )
    keep = _thin(ts_ns.size)
    for s, v in zip(series, values, strict=True):
        points = " ".join(f"{x(i):.1f},{y(v[i]):.1f}" for i in keep.tolist() if math.isfinite(v[i]))
        parts.append(
            f'<polyline class="line" fill="none" stroke="{s.color}" stroke-width="1.3" '
            f'points="{points}"><title>{html.escape(s.label)}</title></polyline>'
        )
    for m in markers:
        index = int(np.clip(np.searchsorted(ts_ns, m.ts_ns), 0, last))
        mx, my = x(index), y(m.value)
        up = m.kind == "entry"
        shape = (
            f"{mx:.1f},{my + 1:.1f} {mx - 5:.1f},{my + 9:.1f} {mx + 5:.1f},{my + 9:.1f}"
            if up
            else f"{mx:.1f},{my - 1:.1f} {mx - 5:.1f},{my - 9:.1f} {mx + 5:.1f},{my - 9:.1f}"
        )
        color = "#1a7f37" if up else "#cf222e"
        parts.append(
            f'<polygon class="marker {m.kind}" points="{shape}" fill="{color}">'
            f"<title>{html.escape(m.title)}</title></polygon>"
        )
    parts.append("</svg>")
    return "".join(parts)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def heat_color(value: float, scale: float) -> str:
    """Green for gains, red for losses, deeper with size (``scale``: the value at full
    colour); white at zero."""
    if not math.isfinite(value) or scale <= 0:
        return "#ffffff"
    depth = min(abs(value) / scale, 1.0)
    base = (26, 127, 55) if value >= 0 else (207, 34, 46)
    r, g, b = (round(255 + (c - 255) * depth * 0.75) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def month_heat_table(
    by_month: dict[str, float], fmt: Formatter, totals: dict[str, float], table_id: str = ""
) -> str:
    """Years down, months across (``by_month`` keyed ``YYYY-MM``), each cell coloured by its
    value, and a column of ``totals`` per year."""
    if not by_month:
        return f'<p class="empty" id="{html.escape(table_id)}">(no months)</p>'
    scale = max(abs(v) for v in by_month.values() if math.isfinite(v)) if by_month else 0.0
    years = sorted({key[:4] for key in by_month})
    head = "".join(f"<th>{m}</th>" for m in MONTHS)
    rows = []
    for year in years:
        cells = []
        for number in range(1, 13):
            value = by_month.get(f"{year}-{number:02d}")
            if value is None:
                cells.append("<td></td>")
                continue
            cells.append(
                f'<td class="heat" data-month="{year}-{number:02d}" '
                f'style="background:{heat_color(value, scale)}">{html.escape(fmt(value))}</td>'
            )
        total = totals.get(year)
        shown = "" if total is None else html.escape(fmt(total))
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}<td class='year'>{shown}</td></tr>")
    return (
        f'<table class="heat-table" id="{html.escape(table_id)}"><tr><th></th>{head}'
        f"<th>year</th></tr>{''.join(rows)}</table>"
    )
