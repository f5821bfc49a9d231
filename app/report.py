"""A self-contained HTML report of one run (no scripts, no external assets).

Equity and drawdown are inline SVG; monthly returns come from month-end equity. A run that
traded a model opens with which data the model saw — a warning box when the run is not
out-of-sample evidence.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.overlap import describe, is_out_of_sample
from config.sessions import IST
from engine.metrics import drawdown_series
from engine.pipeline import run_config
from engine.session import SessionResult
from engine.version import code_version


def _svg_line(
    values: np.ndarray,
    width: int = 900,
    height: int = 220,
    color: str = "#1f6feb",
    invert: bool = False,
) -> str:
    if values.size < 2:
        return "<p>(not enough points)</p>"
    step = max(1, values.size // 2000)
    v = values[::step]
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    xs = np.linspace(0, width, v.size)
    ys = (v - lo) / span * (height - 10) + 5
    ys = ys if invert else height - ys
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" '
        f'role="img"><polyline fill="none" stroke="{color}" stroke-width="1.2" '
        f'points="{points}"/><text x="4" y="14" font-size="11">{hi:,.2f}</text>'
        f'<text x="4" y="{height - 4}" font-size="11">{lo:,.2f}</text></svg>'
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "∞" if value > 0 else "-"
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return html.escape(str(value))


def monthly_returns(ts_ns: np.ndarray, equity: np.ndarray, initial: float) -> pd.Series:
    if equity.size == 0:
        return pd.Series(dtype=float)
    idx = pd.to_datetime(ts_ns, utc=True).tz_convert(IST)
    month_end = pd.Series(equity, index=idx).groupby(idx.strftime("%Y-%m")).last()
    prev = month_end.shift(1).fillna(initial)
    return month_end / prev - 1.0


def _model_data_section(run: dict[str, Any]) -> str:
    data = run.get("model_data")
    if data is None:
        if "model_hash" in run.get("config", {}):
            return "<h2>Model data</h2><p>not recorded (stored before runs measured it)</p>"
        return ""
    lines = [line for line in describe(data) if not line.startswith("!!!")]
    body = "<br>".join(html.escape(line) for line in lines)
    kind = "ok" if is_out_of_sample(data) else "warn"
    fraction = data.get("in_sample_fraction")
    shown = "unknown" if fraction is None else f"{fraction:.1%}"
    return (
        f'<h2>Model data</h2><p>in-sample fraction <b id="in-sample">{shown}</b> · provenance '
        f"<b>{html.escape(str(data.get('provenance')))}</b></p>"
        f'<div class="{kind}" id="model-data">{body}</div>'
    )


def render_report(run: dict[str, Any], ts_ns: np.ndarray, equity: np.ndarray) -> str:
    initial = float(
        run.get("config", {}).get("settings", {}).get("capital", equity[0] if equity.size else 1.0)
    )
    dd = drawdown_series(equity) if equity.size else equity
    metrics = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
        for k, v in run.get("metrics", {}).items()
    )
    months = "".join(
        f"<tr><td>{m}</td><td class='{'neg' if r < 0 else 'pos'}'>{r:.2%}</td></tr>"
        for m, r in monthly_returns(ts_ns, equity, initial).items()
    )
    trades = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(t[k])}</td>"
            for k in (
                "symbol",
                "side",
                "qty",
                "entry_time",
                "entry_price",
                "exit_time",
                "exit_price",
                "pnl",
                "costs",
                "exit_reason",
            )
        )
        + "</tr>"
        for t in run.get("trades", [])
    )
    quality = run.get("data_quality", {})
    q_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
        for section in ("dropped", "notes")
        for k, v in quality.get(section, {}).items()
    )
    title = f"{run.get('mode', '')} run {run.get('run_id', '')} — {run.get('strategy', '')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:3px 8px;
text-align:right}}th{{text-align:left;background:#f6f8fa}}.neg{{color:#b31d28}}
.pos{{color:#22863a}}h2{{margin-top:1.5em}}
.warn{{border:3px solid #b31d28;background:#ffeef0;padding:.6em;font-weight:600}}
.ok{{border:1px solid #22863a;padding:.6em}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>mode <b>{html.escape(str(run.get("mode", "")))}</b> · code
{html.escape(str(run.get("code_version", "")))} · data
{html.escape(str(run.get("data_fingerprint", "")))} · bars {run.get("bars_processed", "")}</p>
{_model_data_section(run)}
<h2>Metrics</h2><table id="metrics">{metrics}</table>
<h2>Equity</h2>{_svg_line(equity)}
<h2>Drawdown</h2>{_svg_line(dd, color="#b31d28", invert=True)}
<h2>Monthly returns</h2><table id="monthly">{months}</table>
<h2>Trades ({len(run.get("trades", []))})</h2>
<table id="trades"><tr><th>symbol</th><th>side</th><th>qty</th><th>entry</th><th>price</th>
<th>exit</th><th>price</th><th>pnl</th><th>costs</th><th>reason</th></tr>{trades}</table>
<h2>Data quality</h2><p>{quality.get("rows_read", "")} rows read,
{quality.get("bars_out", "")} bars used</p><table id="quality">{q_rows}</table>
</body></html>
"""


def write_report_for_result(result: SessionResult, path: Path) -> None:
    """The report of a session that just ran (any mode), from its result alone."""
    pipe = result.pipeline
    pf = pipe.portfolio
    run = {
        "run_id": result.run_id or "(not stored)",
        "mode": result.mode,
        "strategy": pipe.host.strategy.name,
        "config": run_config(pipe.settings, pipe.host.strategy),
        "metrics": result.metrics,
        "trades": result.trades,
        "data_quality": result.quality,
        "bars_processed": result.bars_processed,
        "code_version": code_version(),
        "data_fingerprint": result.data_fingerprint,
        "in_sample_fraction": result.extra.get("in_sample_fraction"),
        "model_data": result.extra.get("model_data"),
    }
    path.write_text(
        render_report(run, np.asarray(pf.curve_ts), np.asarray(pf.curve_equity)),
        encoding="utf-8",
    )
