"""Performance metrics of a run, from its equity curve and trade list.

Formulas (r_i = bar-to-bar equity returns, d_j = daily returns from each session's last equity):
- total_return = E_end / E_0 - 1;  CAGR = (E_end / E_0)^(365.25 / calendar days) - 1
- sharpe = mean(d) / std(d, ddof=1) · √252 (daily; what the promotion gate uses);
  sharpe_bar = mean(r) / std(r, ddof=1) · √(252 · bars per session), bars per session =
  ceil(session length / interval), the length from the run's session settings (375 min for
  NSE) — the intraday-bar annualisation; overnight gaps fall in the first bar of each session.
  Risk-free rate 0.
- sortino = mean(d) / downside deviation · √252, downside deviation = √(mean(min(d, 0)²))
- max_drawdown = max over t of 1 - E_t / max_{s≤t} E_s; its duration = the longest stretch
  (in bars and calendar days) from a peak to the recovery of that peak (or the end)
- win_rate = winning trades / closed trades; profit_factor = Σ wins / |Σ losses|
- avg_trade = mean net trade P&L; exposure = share of bars with a non-zero position;
  turnover = traded value / mean equity; total_costs = Σ charges; total_slippage = Σ over
  fills of |fill price − the price the order was decided against| · qty (already inside the
  fill prices, so inside total_pnl; charges are on top).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from config.sessions import SessionTimes, local_days
from engine.portfolio import Trade

TRADING_DAYS = 252


def _ratio(mean: float, dev: float, scale: float) -> float:
    return float(mean / dev * math.sqrt(scale)) if dev > 0 and math.isfinite(dev) else 0.0


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    peak = np.maximum.accumulate(equity)
    return 1.0 - equity / peak


def compute_metrics(
    ts_ns: np.ndarray,
    equity: np.ndarray,
    gross: np.ndarray,
    trades: Sequence[Trade],
    initial_capital: float,
    interval_minutes: int,
    turnover: float,
    total_costs: float,
    *,
    session: SessionTimes,
    total_slippage: float = 0.0,
) -> dict[str, float]:
    """The module doc's metrics; ``session`` (the run's hours) sets bars per session."""
    out: dict[str, float] = {}
    if equity.size == 0:
        return {"total_return": 0.0, "trade_count": 0.0}
    curve = np.concatenate([[initial_capital], equity])
    out["final_equity"] = float(equity[-1])
    out["total_return"] = float(equity[-1] / initial_capital - 1.0)
    days_span = (ts_ns[-1] - ts_ns[0]) / 86_400e9 + 1.0
    growth = equity[-1] / initial_capital
    out["cagr"] = float(growth ** (365.25 / days_span) - 1.0) if growth > 0 else -1.0
    bar_returns = np.diff(curve) / curve[:-1]
    bars_per_day = session.bars_per_session(interval_minutes)
    out["sharpe_bar"] = _ratio(
        bar_returns.mean(),
        bar_returns.std(ddof=1) if bar_returns.size > 1 else 0.0,
        TRADING_DAYS * bars_per_day,
    )
    days = local_days(ts_ns)
    last_of_day = np.flatnonzero(np.diff(days, append=days[-1] + 1))
    day_equity = np.concatenate([[initial_capital], equity[last_of_day]])
    daily = np.diff(day_equity) / day_equity[:-1]
    out["sharpe"] = _ratio(daily.mean(), daily.std(ddof=1) if daily.size > 1 else 0.0, TRADING_DAYS)
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2))) if daily.size else 0.0
    out["sortino"] = _ratio(daily.mean() if daily.size else 0.0, downside, TRADING_DAYS)
    dd = drawdown_series(curve)
    out["max_drawdown"] = float(dd.max())
    longest, start = 0, None
    longest_days = 0.0
    curve_ts = np.concatenate([[ts_ns[0]], ts_ns])
    for i, value in enumerate(dd):
        if value > 0 and start is None:
            start = i - 1
        elif value == 0 and start is not None:
            if i - start > longest:
                longest, longest_days = i - start, (curve_ts[i] - curve_ts[start]) / 86_400e9
            start = None
    if start is not None and len(dd) - 1 - start > longest:
        longest = len(dd) - 1 - start
        longest_days = (curve_ts[-1] - curve_ts[start]) / 86_400e9
    out["max_drawdown_bars"] = float(longest)
    out["max_drawdown_days"] = float(longest_days)
    pnl = np.array([t.pnl for t in trades if t.closed])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    out["trade_count"] = float(pnl.size)
    out["win_rate"] = float(wins.size / pnl.size) if pnl.size else 0.0
    out["profit_factor"] = (
        float(wins.sum() / -losses.sum()) if losses.size else (math.inf if wins.size else 0.0)
    )
    out["avg_trade"] = float(pnl.mean()) if pnl.size else 0.0
    out["total_pnl"] = float(equity[-1] - initial_capital)
    out["exposure"] = float(np.mean(gross > 0))
    out["turnover"] = float(turnover / equity.mean()) if equity.mean() > 0 else 0.0
    out["total_costs"] = float(total_costs)
    out["total_slippage"] = float(total_slippage)
    return out
