from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from config.sessions import NSE
from engine.metrics import compute_metrics
from engine.portfolio import Trade

DAY = 86_400_000_000_000


def test_metrics_against_independent_formulas():
    rng = np.random.default_rng(1)
    # 20 sessions of 75 five-minute bars
    days = pd.bdate_range("2024-01-01", periods=20)
    ts = np.concatenate(
        [
            (
                pd.Timestamp(d, tz="Asia/Kolkata")
                + pd.Timedelta(hours=9, minutes=15)
                + pd.to_timedelta(np.arange(75) * 5, "min")
            )
            .as_unit("ns")
            .asi8
            for d in days
        ]
    )
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0001, 0.001, ts.size))
    gross = np.where(np.arange(ts.size) % 2 == 0, 1.0, 0.0)
    trades = [Trade("X", 1, 1, 1, 1.0, 2, 2.0, pnl) for pnl in (10.0, -5.0, 20.0, -5.0)]
    m = compute_metrics(ts, equity, gross, trades, 100_000.0, 5, 500_000.0, 12.5, session=NSE)

    curve = np.concatenate([[100_000], equity])
    r = np.diff(curve) / curve[:-1]
    assert m["sharpe_bar"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252 * 75))
    daily_close = (
        pd.Series(equity, index=pd.to_datetime(ts, utc=True).tz_convert("Asia/Kolkata"))
        .groupby(lambda t: t.date())
        .last()
        .to_numpy()
    )
    d = (
        np.diff(np.concatenate([[100_000], daily_close]))
        / np.concatenate([[100_000], daily_close])[:-1]
    )
    assert m["sharpe"] == pytest.approx(d.mean() / d.std(ddof=1) * math.sqrt(252))
    downside = math.sqrt(np.mean(np.minimum(d, 0) ** 2))
    assert m["sortino"] == pytest.approx(d.mean() / downside * math.sqrt(252))
    peak = np.maximum.accumulate(curve)
    assert m["max_drawdown"] == pytest.approx(np.max(1 - curve / peak))
    assert m["total_return"] == pytest.approx(equity[-1] / 100_000 - 1)
    assert m["win_rate"] == 0.5 and m["profit_factor"] == pytest.approx(3.0)
    assert m["avg_trade"] == pytest.approx(5.0) and m["trade_count"] == 4
    assert m["exposure"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx(500_000 / equity.mean())
    assert m["total_costs"] == 12.5


def test_drawdown_duration_counts_peak_to_recovery():
    ts = np.arange(6) * DAY
    equity = np.array([100.0, 110.0, 99.0, 105.0, 111.0, 100.0])
    m = compute_metrics(ts, equity, np.zeros(6), [], 100.0, 5, 0.0, 0.0, session=NSE)
    assert m["max_drawdown"] == pytest.approx(1 - 99 / 110)
    assert m["max_drawdown_bars"] == 3  # from the 110 peak to the 111 recovery
