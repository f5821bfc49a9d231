"""The stitched out-of-sample curve of a study and what is measured on it.

How folds are chained: every fold's backtest starts from the run's capital (as ``trader
backtest`` on that window would); the stitched curve compounds them — fold k's equity is scaled
by ``E_end(k-1) / capital``, so fold k starts from the previous fold's ending equity and its
returns are unchanged. Curve metrics (total return, CAGR, Sharpe, Sortino, max drawdown) are
``engine.metrics.compute_metrics`` on the stitched curve; trade counts, win rate and profit
factor pool the folds' closed trades, and costs are the sum of the folds' costs, each in its
fold's own currency (a fold starting at ``capital``); turnover is not stitched.

Model scores pool the folds' test windows: confusion matrices add (accuracy, balanced
accuracy, baselines), the IC is computed over every fold's (signal, forward return) pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from config.sessions import SessionTimes
from engine.metrics import compute_metrics
from engine.portfolio import Trade
from models.metrics import report_from_confusion
from models.predictions import information_coefficients


def stitch(
    units: list[dict[str, Any]], capital: float, interval_minutes: int, session: SessionTimes
) -> dict[str, Any]:
    """``units``: one grid point's fold results, in fold order."""
    ts_parts, eq_parts, gross_parts = [], [], []
    level = capital
    for unit in units:
        curve = unit["equity"]
        factor = level / capital
        equity = np.asarray(curve["equity"], dtype=np.float64) * factor
        ts_parts.append(np.asarray(curve["ts"], dtype=np.int64))
        eq_parts.append(equity)
        gross_parts.append(np.asarray(curve["gross"], dtype=np.float64) * factor)
        if equity.size:
            level = float(equity[-1])
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64)
    equity = np.concatenate(eq_parts) if eq_parts else np.zeros(0)
    gross = np.concatenate(gross_parts) if gross_parts else np.zeros(0)
    trades = [
        Trade("", 1, 0, 1, 0.0, exit_ts_ns=1, pnl=float(pnl))
        for unit in units
        for pnl in unit["trades_pnl"]
    ]
    costs = float(sum(unit["metrics"].get("total_costs", 0.0) for unit in units))
    metrics = compute_metrics(
        ts, equity, gross, trades, capital, interval_minutes, 0.0, costs, session=session
    )
    metrics.pop("turnover", None)
    returns = [unit["metrics"].get("total_return", 0.0) for unit in units]
    metrics["folds"] = float(len(units))
    metrics["profitable_folds"] = float(sum(r > 0 for r in returns))
    out: dict[str, Any] = {
        "metrics": metrics,
        "equity": {"ts": ts.tolist(), "equity": equity.tolist()},
        "chaining": "each fold starts from the previous fold's ending equity (returns compound)",
    }
    if units and units[0].get("model") is not None:
        out["model"] = pooled_model_scores(units)
    return out


def pooled_model_scores(units: list[dict[str, Any]]) -> dict[str, Any]:
    def pooled(pick: Any) -> dict[str, Any]:
        cm = sum(np.asarray(pick(u["model"])["confusion_matrix"], dtype=np.int64) for u in units)
        return report_from_confusion(np.asarray(cm))

    signal = np.concatenate([np.asarray(u["model"]["signal"], np.float64) for u in units])
    realised = np.concatenate([np.asarray(u["model"]["forward_return"], np.float64) for u in units])
    return {
        "calls": pooled(lambda m: m["calls"]),
        "baselines": {
            "majority": pooled(lambda m: m["baselines"]["majority"]),
            "logistic": pooled(lambda m: m["baselines"]["logistic"]),
        },
        "ic": information_coefficients(signal, realised),
    }
