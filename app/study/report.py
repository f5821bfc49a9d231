"""A walk-forward study as one self-contained HTML page (opens offline: inline CSS and SVG, no
scripts, nothing fetched): the per-fold table with what each fold's models saw, the stitched
out-of-sample equity on a real time axis (dated ticks, fold boundaries marked), and the IC by
fold. Built from the stored study (``engine.store.studies.load_study``)."""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from config.sessions import IST

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 900, 300, 80, 50, 20, 40
STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}td{white-space:nowrap}
td.note{white-space:normal;min-width:320px}.neg{color:#b00}
.pos{color:#070}.note{color:#555;font-size:12px}svg{background:#fff;border:1px solid #ddd}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: Any) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2%}"


def _num(value: Any, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _signed(value: Any, text: str) -> str:
    cls = (
        ""
        if value is None or not math.isfinite(value) or value == 0
        else ("pos" if value > 0 else "neg")
    )
    return f'<td class="{cls}">{text}</td>'


def _date(ts_ns: int, fmt: str = "%d %b %Y") -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, IST).strftime(fmt)


def equity_svg(ts: list[int], equity: list[float], boundaries: list[int]) -> str:
    """Equity against time (x is time, not bar number: the overnight and weekend gaps show),
    with dated ticks, rupee ticks and a dashed line where each fold's test window starts."""
    if len(ts) < 2:
        return '<p class="note">no equity points</p>'
    t0, t1 = ts[0], ts[-1]
    lo, hi = min(equity), max(equity)
    if hi == lo:
        hi, lo = hi + 1, lo - 1

    def x(t: float) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B)

    step = max(1, len(ts) // 2000)  # at most ~2000 points drawn; the last one always
    idx = list(range(0, len(ts), step)) + ([len(ts) - 1] if (len(ts) - 1) % step else [])
    path = " ".join(f"{x(ts[i]):.1f},{y(equity[i]):.1f}" for i in idx)
    parts = [f'<svg id="equity" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
             'aria-label="stitched out-of-sample equity">']  # fmt: skip
    for k in range(6):
        t = t0 + (t1 - t0) * k / 5
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="#eee"/>'
            f'<text class="xtick" x="{x(t):.1f}" y="{H - PAD_B + 16}" font-size="11" '
            f'text-anchor="middle">{_date(int(t))}</text>'
        )
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
            f'<text class="ytick" x="{PAD_L - 6}" y="{y(v) + 4:.1f}" font-size="11" '
            f'text-anchor="end">₹{v:,.0f}</text>'
        )
    for b in boundaries:
        parts.append(
            f'<line class="fold" x1="{x(b):.1f}" x2="{x(b):.1f}" y1="{PAD_T}" y2="{H - PAD_B}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    parts.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.5" points="{path}"/>')
    parts.append("</svg>")
    return "".join(parts)


def ic_svg(labels: list[str], ics: list[float | None]) -> str:
    """IC per fold as bars around zero (a missing IC leaves a gap)."""
    values = [v for v in ics if v is not None and math.isfinite(v)]
    if not values:
        return '<p class="note">no IC (the strategy makes no predictions)</p>'
    top = max(0.05, max(abs(v) for v in values))
    height, width = 200, max(300, 60 * len(ics) + PAD_L)
    mid = height / 2
    parts = [f'<svg id="ic" width="{width}" height="{height + 30}" role="img" '
             'aria-label="IC by fold">',
             f'<line x1="{PAD_L}" x2="{width}" y1="{mid}" y2="{mid}" stroke="#666"/>',
             f'<text x="{PAD_L - 6}" y="{mid - (height / 2 - 10) + 4}" font-size="11" '
             f'text-anchor="end">{top:+.3f}</text>',
             f'<text x="{PAD_L - 6}" y="{mid + 4}" font-size="11" text-anchor="end">0</text>',
             f'<text x="{PAD_L - 6}" y="{mid + (height / 2 - 10) + 4}" font-size="11" '
             f'text-anchor="end">{-top:+.3f}</text>']  # fmt: skip
    for i, (label, value) in enumerate(zip(labels, ics, strict=True)):
        cx = PAD_L + 30 + 60 * i
        if value is not None and math.isfinite(value):
            bar = abs(value) / top * (height / 2 - 10)
            top_y = mid - bar if value > 0 else mid
            colour = "#070" if value > 0 else "#b00"
            parts.append(
                f'<rect class="icbar" x="{cx - 15}" y="{top_y:.1f}" width="30" '
                f'height="{bar:.1f}" fill="{colour}"><title>{value:.4f}</title></rect>'
            )
        parts.append(
            f'<text x="{cx}" y="{height + 20}" font-size="11" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render(study: dict[str, Any]) -> str:
    spec = study["spec"]
    rows = []
    for fold in study["folds"]:
        m = fold["metrics"]["backtest"]
        model = fold["metrics"].get("model") or {}
        calls, base, ic = model.get("calls", {}), model.get("baselines", {}), model.get("ic", {})
        rows.append(
            "<tr class='fold-row'>"
            f"<td>{fold['point']}</td><td>{fold['fold']}</td>"
            f"<td class='l'>{_e(fold['train_start'])} → {_e(fold['train_last'])}</td>"
            f"<td class='l'>{_e(fold['test_start'])} → {_e(fold['test_end'])}</td>"
            f"<td>{int(m.get('trade_count', 0))}</td>"
            + _signed(m.get("total_return"), _pct(m.get("total_return")))
            + f"<td>{_num(m.get('sharpe'))}</td><td>{_pct(m.get('max_drawdown'))}</td>"
            f"<td>₹{m.get('total_costs', 0):,.2f}</td>"
            f"<td>{_num(calls.get('accuracy'), 3)}</td>"
            f"<td>{_num(calls.get('balanced_accuracy'), 3)}</td>"
            f"<td>{_num(base.get('majority', {}).get('accuracy'), 3)}</td>"
            f"<td>{_num(base.get('logistic', {}).get('accuracy'), 3)}</td>"
            f"<td>{_num(ic.get('ic'), 3)}</td><td>{_num(ic.get('rank_ic'), 3)}</td>"
            f"<td class='l note'>{_e(fold['data_seen'] or 'no model')}</td></tr>"
        )
    sections = []
    for point, res in (study.get("results") or {}).items():
        m = res["metrics"]
        curve = res["equity"]
        starts = [
            f["equity"]["ts"][0]
            for f in study["folds"]
            if str(f["point"]) == point and f["equity"]["ts"]
        ][1:]
        folds = [f for f in study["folds"] if str(f["point"]) == point]
        ics = [(f["metrics"].get("model") or {}).get("ic", {}).get("ic") for f in folds]
        summary = (
            f"return {_pct(m.get('total_return'))}, CAGR {_pct(m.get('cagr'))}, Sharpe "
            f"{_num(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, "
            f"{int(m.get('trade_count', 0))} trades, costs ₹{m.get('total_costs', 0):,.2f}, "
            f"profitable folds {int(m['profitable_folds'])}/{int(m['folds'])}"
        )
        sections.append(
            f"<h2>Point {_e(point)}: {_e(json.dumps(res['params']))}</h2>"
            f"<p id='stitched-{_e(point)}'>Stitched out-of-sample: {_e(summary)}</p>"
            f"<p class='note'>{_e(res['chaining'])}. Dashed lines: fold boundaries.</p>"
            + equity_svg(curve["ts"], curve["equity"], starts)
            + "<h3>IC of P(BUY) − P(SELL) against the realised forward return, by fold</h3>"
            + ic_svg([f"fold {f['fold']}" for f in folds], ics)
        )
    head = ("<tr><th>pt</th><th>fold</th><th class='l'>model trained on (IST)</th>"
            "<th class='l'>test window</th><th>trades</th><th>return</th><th>Sharpe</th>"
            "<th>max DD</th><th>costs</th><th>accuracy</th><th>balanced</th><th>majority</th>"
            "<th>logistic</th><th>IC</th><th>rank IC</th><th class='l'>data the models saw"
            "</th></tr>")  # fmt: skip
    title = f"Walk-forward study {study['study_id']}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
        f"<p>strategy {_e(study['strategy'])}, status {_e(study['status'])}; train "
        f"{_e(spec['train'])}, test {_e(spec['test'])}, step {_e(spec['step'] or spec['test'])}"
        f"{', expanding' if spec['expanding'] else ''}; seeds {_e(spec['seeds'])}; data "
        f"{_e(', '.join(spec['data']))}; code {_e(study['code_version'])}</p>"
        "<p class='note'>Every number below is out of sample: each fold's models were trained "
        "only on the data named in its row, which ends before its test window (purge gap of "
        "the label horizon).</p>"
        f"<table id='folds'>{head}{''.join(rows)}</table>{''.join(sections)}</body></html>"
    )


def write_study_report(study: dict[str, Any], path: Path) -> None:
    path.write_text(render(study), encoding="utf-8")
