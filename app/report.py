"""A self-contained HTML report of one run (no scripts, no external assets): it opens offline.

The header says what ran on what — mode, strategy parameters, capital, costs, slippage,
interval, period, data fingerprint, code version — whichever command wrote it (``--report`` or
``trader report RUN``). Equity and drawdown are time-axis charts (IST dates, rupees and
percentages on their axes, ``app.charts``); monthly returns a heat table; each traded symbol's
price chart marks its entries and exits (when the run's bars are at hand); a model's calls are
shown against the labels realised on the run's bars. Every number is formatted by
``app.readable``. A run that traded a model opens with which data the model saw — a warning box
when the run is not out-of-sample evidence.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.charts import Marker, Series, line_chart, month_heat_table
from app.overlap import describe, is_out_of_sample
from app.readable import format_metric, inr, ist, metric_label, pct, utc
from config.sessions import IST, epoch_ns
from engine.data.loader import LoadedBars
from engine.metrics import drawdown_series
from engine.pipeline import run_config
from engine.session import SessionResult
from engine.version import code_version
from models.metrics import CLASS_NAMES

PRICE_CHARTS = 12  # symbols with a price chart (most trades first); the table has every trade


def monthly_returns(ts_ns: np.ndarray, equity: np.ndarray, initial: float) -> pd.Series:
    """Each IST month's return from month-end equity (the first month from ``initial``)."""
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
    shown = "unknown" if fraction is None else pct(fraction, 1)
    return (
        f'<h2>Model data</h2><p>in-sample fraction <b id="in-sample">{shown}</b> · provenance '
        f"<b>{html.escape(str(data.get('provenance')))}</b></p>"
        f'<div class="{kind}" id="model-data">{body}</div>'
    )


def _ns(text: str) -> int:
    """A trade's ISO time (IST offset included) as UTC epoch ns."""
    return int(pd.Timestamp(text).value)


def _row(label: str, value: str, key: str = "") -> str:
    attr = f' data-key="{html.escape(key)}"' if key else ""
    return f"<tr{attr}><th>{html.escape(label)}</th><td>{value}</td></tr>"


def _period(ts_ns: np.ndarray, run: dict[str, Any]) -> str:
    """First and last bar of the run, IST (from its equity curve, else its trades)."""
    if ts_ns.size:
        return f"{ist(int(ts_ns[0]))} → {ist(int(ts_ns[-1]))}"
    trades = run.get("trades", [])
    if trades:
        return f"{ist(_ns(trades[0]['entry_time']))} → {ist(_ns(trades[-1]['exit_time']))}"
    return "-"


def _costs_text(costs: dict[str, Any]) -> str:
    model = costs.get("model")
    if model is None:
        return "-"
    if model == "none":
        return "none (--costs none: P&L before charges)"
    return (
        f"{model}: brokerage {costs.get('brokerage_pct')}% (cap ₹{costs.get('brokerage_cap')}), "
        f"STT {costs.get('stt_sell_pct')}% on sells, exchange {costs.get('exchange_txn_pct')}%, "
        f"stamp {costs.get('stamp_buy_pct')}% on buys, GST {costs.get('gst_pct')}%"
    )


def _header(run: dict[str, Any], ts_ns: np.ndarray, data_label: str | None) -> str:
    """What ran on what: the same rows whichever command wrote the report."""
    config = run.get("config", {})
    settings = config.get("settings", {})
    params = config.get("params", {})
    slippage = settings.get("execution", {}).get("slippage_bps")
    e = html.escape
    shown_params = " ".join(
        f'<span class="param" data-name="{e(str(k))}">{e(str(k))}={e(str(v))}</span>'
        for k, v in params.items()
    )
    capital = e(inr(float(settings["capital"]))) if "capital" in settings else "-"
    data = f"<code>{e(str(run.get('data_fingerprint') or '-'))}</code>"
    if data_label:
        data += f" · {e(data_label)}"
    rows = [
        _row("run", f"<code>{e(str(run.get('run_id', '')))}</code>", "run_id"),
        _row("mode", f"<b>{e(str(run.get('mode', '')))}</b>", "mode"),
        _row("status", e(str(run.get("status") or "-")), "status"),
        _row("strategy", e(str(run.get("strategy") or config.get("strategy", "-"))), "strategy"),
        _row("parameters", shown_params or "-", "params"),
        _row("capital", capital, "capital"),
        _row("costs", e(_costs_text(settings.get("costs", {}))), "costs"),
        _row("slippage", "-" if slippage is None else f"{float(slippage):g} bps", "slippage"),
        _row("interval", e(str(settings.get("interval", "-"))), "interval"),
        _row("period", e(_period(ts_ns, run)), "period"),
        _row("bars", f"{int(run.get('bars_processed') or 0):,}", "bars"),
        _row("data", data, "data"),
        _row("code version", f"<code>{e(str(run.get('code_version') or '-'))}</code>", "code"),
    ]
    if run.get("created_at"):
        rows.append(_row("created", e(utc(str(run["created_at"]))), "created"))
    if run.get("feed_kind"):
        feed = str(run["feed_kind"])
        if run.get("mode") != "backtest":
            feed += f" · {len(run.get('sessions') or [])} sessions traded by the wall clock"
        rows.append(_row("feed", e(feed), "feed"))
    if "model_hash" in config:
        rows.append(_row("model", f"<code>{e(str(config['model_hash'])[:16])}</code>", "model"))
    return f'<table id="header">{"".join(rows)}</table>'


def _metrics_table(metrics: dict[str, Any]) -> str:
    return "".join(
        _row(metric_label(k), html.escape(format_metric(k, v)), k) for k, v in metrics.items()
    )


def _monthly_section(ts_ns: np.ndarray, equity: np.ndarray, initial: float) -> str:
    by_month = {str(k): float(v) for k, v in monthly_returns(ts_ns, equity, initial).items()}
    totals: dict[str, float] = {}
    for key, value in by_month.items():  # a year's return compounds its months'
        totals[key[:4]] = (1 + totals.get(key[:4], 0.0)) * (1 + value) - 1
    return month_heat_table(by_month, pct, totals, table_id="monthly")


def _trade_markers(trades: list[dict[str, Any]]) -> list[Marker]:
    out = []
    for t in trades:
        entry, exit_ = _ns(t["entry_time"]), _ns(t["exit_time"])
        bought, sold = inr(float(t["entry_price"])), inr(float(t["exit_price"]))
        why, pnl = t.get("exit_reason") or "-", inr(float(t["pnl"]))
        out.append(
            Marker(entry, float(t["entry_price"]), "entry",
                   f"entry {t['side']} {t['qty']} @ {bought}, {ist(entry)}")
        )  # fmt: skip
        out.append(
            Marker(exit_, float(t["exit_price"]), "exit",
                   f"exit {t['qty']} @ {sold}, {ist(exit_)} ({why}), P&L {pnl}")
        )  # fmt: skip
    return out


def _price_section(run: dict[str, Any], bars: LoadedBars | None) -> str:
    """Each traded symbol's closes with its entries (▲) and exits (▼) on their bars."""
    if bars is None:
        return (
            '<p class="empty" id="prices">price charts need the run\'s bars: '
            "<code>trader report RUN --data PATH</code>, or <code>--report</code> with the run</p>"
        )
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for t in run.get("trades", []):
        by_symbol.setdefault(t["symbol"], []).append(t)
    symbols = sorted(by_symbol, key=lambda s: (-len(by_symbol[s]), s)) or bars.symbols[:1]
    shown, rest = symbols[:PRICE_CHARTS], symbols[PRICE_CHARTS:]
    frame = bars.frame
    parts = []
    for symbol in shown:
        rows = frame[frame["symbol"] == symbol]
        mine = by_symbol.get(symbol, [])
        chart = line_chart(
            epoch_ns(rows["ts"]), [Series(rows["close"].to_numpy(float), "#57606a", "close")],
            inr, markers=_trade_markers(mine), chart_id=f"price-{symbol}",
            title=f"{symbol} close",
        )  # fmt: skip
        parts.append(
            f"<h3>{html.escape(symbol)} <small>({len(mine):,} trades: ▲ entry, ▼ exit)</small>"
            f'</h3><div class="price" data-symbol="{html.escape(symbol)}">{chart}</div>'
        )
    if rest:
        more = sum(len(by_symbol.get(s, [])) for s in rest)
        parts.append(
            f"<p>… {len(rest)} more traded symbols ({more:,} trades): see the trades table</p>"
        )
    return "".join(parts)


def _model_calls_section(run: dict[str, Any]) -> str:
    """The model's calls against the labels realised on the run's bars: a confusion matrix
    and per-class accuracy, beside always calling the most common class."""
    if "model_hash" not in run.get("config", {}):
        return ""
    calls = run.get("model_calls") or {}
    if "confusion_matrix" not in calls:
        note = calls.get("note", "not scored for this run (a backtest scores them)")
        return f'<h2>Model calls</h2><p id="model-calls">{html.escape(str(note))}</p>'
    matrix = calls["confusion_matrix"]
    per_class = calls.get("per_class_accuracy", {})
    head = "".join(f"<th>called {html.escape(n)}</th>" for n in CLASS_NAMES)
    body = "".join(
        f"<tr><th>realised {html.escape(name)}</th>"
        + "".join(f"<td>{int(v):,}</td>" for v in matrix[i])
        + f"<td>{html.escape(format_metric('accuracy', per_class.get(name)))}</td></tr>"
        for i, name in enumerate(CLASS_NAMES)
    )
    support = calls.get("support", {})
    total = sum(support.values())
    majority = max(support.values()) / total if total else float("nan")
    return (
        '<h2>Model calls against realised labels</h2><p id="model-calls">accuracy '
        f"<b>{pct(float(calls.get('accuracy', 0.0)), 1)}</b> · balanced "
        f"{pct(float(calls.get('balanced_accuracy', 0.0)), 1)} on "
        f"{int(calls.get('scored', 0)):,} labelled bars · always the most common class: "
        f"{pct(majority, 1)}</p>"
        f'<table id="confusion"><tr><th></th>{head}<th>right</th></tr>{body}</table>'
    )


def _trades_table(trades: list[dict[str, Any]]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(t['symbol'])}</td><td>{t['side']}</td><td>{t['qty']:,}</td>"
        f"<td>{ist(_ns(t['entry_time']))}</td><td>{inr(float(t['entry_price']))}</td>"
        f"<td>{ist(_ns(t['exit_time']))}</td><td>{inr(float(t['exit_price']))}</td>"
        f"<td class='{'neg' if t['pnl'] < 0 else 'pos'}'>{inr(float(t['pnl']))}</td>"
        f"<td>{inr(float(t['costs']))}</td><td>{html.escape(str(t['exit_reason']))}</td>"
        "</tr>"
        for t in trades
    )
    return (
        '<table id="trades"><tr><th>symbol</th><th>side</th><th>qty</th><th>entry</th>'
        "<th>price</th><th>exit</th><th>price</th><th>P&amp;L</th><th>costs</th><th>reason</th>"
        f"</tr>{rows}</table>"
    )


def _quality_line(quality: dict[str, Any]) -> str:
    if "rows_read" not in quality:
        return "no bar files read (a live feed: bars built from ticks)"
    return f"{int(quality['rows_read']):,} rows read, {int(quality.get('bars_out', 0)):,} bars used"


STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;
text-align:right}th{text-align:left;background:#f6f8fa}.neg{color:#b31d28}
.pos{color:#22863a}h2{margin-top:1.5em}#header td{text-align:left}
.param{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:0 4px;margin:0 2px}
.heat-table td{min-width:3.5em}.empty{color:#57606a}
.warn{border:3px solid #b31d28;background:#ffeef0;padding:.6em;font-weight:600}
.ok{border:1px solid #22863a;padding:.6em}
"""


def render_report(
    run: dict[str, Any],
    ts_ns: np.ndarray,
    equity: np.ndarray,
    bars: LoadedBars | None = None,
    data_label: str | None = None,
) -> str:
    """The report of a run (stored or just finished): one page, no script, no external
    resource. ``bars``: the run's bars, for the price charts with entries and exits."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    equity = np.asarray(equity, dtype=float)
    settings = run.get("config", {}).get("settings", {})
    initial = float(settings.get("capital", equity[0] if equity.size else 1.0))
    dd = drawdown_series(equity) if equity.size else equity
    quality = run.get("data_quality", {})
    q_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for section in ("dropped", "notes")
        for k, v in quality.get(section, {}).items()
    )
    trades = run.get("trades", [])
    title = f"{run.get('mode', '')} run {run.get('run_id', '')} — {run.get('strategy', '')}"
    equity_chart = line_chart(
        ts_ns, [Series(equity, "#1f6feb", "equity")], inr, chart_id="equity", title="equity"
    )
    drawdown_chart = line_chart(
        ts_ns, [Series(-dd, "#cf222e", "drawdown")], lambda v: pct(v, 1),
        chart_id="drawdown", title="drawdown", fill_to_zero=True,
    )  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{_header(run, ts_ns, data_label)}
{_model_data_section(run)}
<h2>Metrics</h2><table id="metrics">{_metrics_table(run.get("metrics", {}))}</table>
<h2>Equity</h2>{equity_chart}
<h2>Drawdown</h2>{drawdown_chart}
<h2>Monthly returns</h2>{_monthly_section(ts_ns, equity, initial)}
<h2>Prices, entries and exits</h2>{_price_section(run, bars)}
{_model_calls_section(run)}
<h2>Trades ({len(trades):,})</h2>{_trades_table(trades)}
<h2>Data quality</h2><p>{_quality_line(quality)}</p><table id="quality">{q_rows}</table>
</body></html>
"""


def write_report_for_result(
    result: SessionResult,
    path: Path,
    bars: LoadedBars | None = None,
    data_label: str | None = None,
) -> None:
    """The report of a session that just ran (any mode), from its result: the header as full
    as ``trader report RUN`` makes it from the stored run."""
    pipe = result.pipeline
    pf = pipe.portfolio
    run = {
        "run_id": result.run_id or "(not stored)",
        "mode": result.mode,
        "strategy": pipe.host.strategy.name,
        "status": result.outcome,
        "config": run_config(pipe.settings, pipe.host.strategy),
        "metrics": result.metrics,
        "trades": result.trades,
        "data_quality": result.quality,
        "bars_processed": result.bars_processed,
        "code_version": code_version(),
        "data_fingerprint": result.data_fingerprint,
        "in_sample_fraction": result.extra.get("in_sample_fraction"),
        "model_data": result.extra.get("model_data"),
        "model_calls": result.extra.get("model_calls"),
    }
    page = render_report(
        run, np.asarray(pf.curve_ts), np.asarray(pf.curve_equity), bars, data_label
    )
    path.write_text(page, encoding="utf-8")
