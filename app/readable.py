"""How numbers and times are shown to a person: the one source for every printed or rendered value.

Stored metrics and JSON keep full precision; this module only decides what a trader reads.
Returns and rates read as percentages, Sharpe-like ratios with two decimals, rupee amounts with
thousands separators, counts as integers. Times follow one rule: market times (bars, trades, the
trading day) in IST, everything else (when a run was created, log lines) with its zone named.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final, Literal

from config.sessions import IST

Kind = Literal["pct", "ratio", "inr", "count", "days", "times"]

# Each stored metric's kind. A metric missing here is shown as a ratio (two decimals).
METRIC_KINDS: Final[dict[str, Kind]] = {
    "total_return": "pct",
    "cagr": "pct",
    "max_drawdown": "pct",
    "win_rate": "pct",
    "exposure": "pct",
    "in_sample_fraction": "pct",
    "accuracy": "pct",
    "balanced_accuracy": "pct",
    "sharpe": "ratio",
    "sharpe_bar": "ratio",
    "sortino": "ratio",
    "profit_factor": "ratio",
    "ic": "ratio",
    "rank_ic": "ratio",
    "total_pnl": "inr",
    "avg_trade": "inr",
    "total_costs": "inr",
    "total_slippage": "inr",
    "final_equity": "inr",
    "initial_capital": "inr",
    "trade_count": "count",
    "max_drawdown_bars": "count",
    "max_drawdown_days": "days",
    "turnover": "times",
}

# Labels a person reads, for the metrics whose stored key is not already plain English.
METRIC_LABELS: Final[dict[str, str]] = {
    "total_return": "total return",
    "cagr": "CAGR",
    "sharpe": "Sharpe (daily)",
    "sharpe_bar": "Sharpe (bar)",
    "sortino": "Sortino",
    "max_drawdown": "max drawdown",
    "max_drawdown_days": "max drawdown length",
    "trade_count": "trades",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "avg_trade": "avg trade",
    "total_pnl": "total P&L",
    "total_costs": "costs",
    "total_slippage": "slippage",
    "in_sample_fraction": "in-sample fraction",
    "balanced_accuracy": "balanced accuracy",
    "ic": "IC",
    "rank_ic": "rank IC",
}


def pct(value: float, decimals: int = 2) -> str:
    """``-0.0055`` → ``-0.55%``."""
    if not math.isfinite(value):
        return str(value)
    return f"{value * 100:,.{decimals}f}%"


def ratio(value: float) -> str:
    """Two decimals: ``-2.767145868579116`` → ``-2.77``; ``inf`` stays ``inf``."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.2f}"


def inr(value: float) -> str:
    """Rupees with thousands separators and paise: ``-2060.5`` → ``₹-2,060.50``."""
    if not math.isfinite(value):
        return str(value)
    return f"₹{value:,.2f}"


def format_value(kind: Kind, value: float) -> str:
    if kind == "pct":
        return pct(value)
    if kind == "inr":
        return inr(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind == "days":
        return f"{value:,.1f} days"
    if kind == "times":
        return f"{value:,.1f}x"
    return ratio(value)


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def format_metric(name: str, value: object) -> str:
    """A stored metric as a person reads it; non-numbers are shown as they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return format_value(METRIC_KINDS.get(name, "ratio"), float(value))


def ist(ts: datetime | int) -> str:
    """A market time (bar, trade, fill) in IST: ``2021-03-01 09:15 IST``; epoch-ns accepted."""
    moment = datetime.fromtimestamp(ts / 1e9, UTC) if isinstance(ts, int) else ts
    if moment.tzinfo is None:  # stored naive times are UTC by the store's convention
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(IST)
    seconds = ":%S" if local.second else ""
    return local.strftime(f"%Y-%m-%d %H:%M{seconds} IST")


def utc(ts: datetime | str) -> str:
    """A wall-clock time that is not a market time (run created, log line), zone named."""
    moment = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
