"""What the dashboard shows, read from the database so the page matches what is stored.

Everything under ``account``, ``positions``, ``open_orders``, ``fills``, ``risk_events``,
``state`` and ``curve`` comes from the run's rows (committed with every bar, and at once after an
operator action), read on one connection. Only what is never stored — feed lag, decision latency,
the in-memory trading state and equity, log lines — comes from the running process, under
``live``. The session commits on the same event loop that serves HTTP, so a snapshot is never
taken between two statements of a bar's transaction.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from engine.events import ts_to_ist
from engine.store.queries import risk_event_dict
from engine.store.schema import (
    EquityRow,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    RunRow,
    TradeRow,
)

RECENT_FILLS = 25
RECENT_RISK_EVENTS = 30
CURVE_POINTS = 600


def ist(ts_ns: int | None) -> str | None:
    return None if ts_ns is None else ts_to_ist(int(ts_ns)).isoformat()


def _side(side: int) -> str:
    return "BUY" if side > 0 else "SELL"


@dataclass
class CurveCache:
    """The run's equity curve, read incrementally (only rows newer than the last read), so a
    page polling every second does not re-read weeks of equity points."""

    run_id: str
    last_id: int = 0
    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    drawdown: list[float] = field(default_factory=list)

    def update(self, conn: Connection) -> None:
        rows = conn.execute(
            select(EquityRow.id, EquityRow.ts, EquityRow.equity, EquityRow.drawdown)
            .where(EquityRow.run_id == self.run_id, EquityRow.id > self.last_id)
            .order_by(EquityRow.id)
        ).all()
        if rows:
            self.last_id = rows[-1].id
            self.ts.extend(r.ts for r in rows)
            self.equity.extend(r.equity for r in rows)
            self.drawdown.extend(r.drawdown for r in rows)

    def points(self, limit: int = CURVE_POINTS) -> dict[str, list[Any]]:
        """At most ``limit`` points for the charts: each bucket keeps its lowest and highest
        equity, so thinning never hides a drawdown's trough."""
        idx = thin(np.asarray(self.equity), limit)
        return {
            "ts_ms": [self.ts[i] // 1_000_000 for i in idx],
            "equity": [self.equity[i] for i in idx],
            "drawdown": [self.drawdown[i] for i in idx],
        }


def thin(values: np.ndarray, limit: int) -> list[int]:
    """Indices of at most ``limit`` (≥ 4) points of ``values``, keeping each bucket's min and
    max, in order, and always the last point."""
    n = len(values)
    if n <= limit:
        return list(range(n))
    buckets = max(1, (limit - 1) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: set[int] = {n - 1}
    for lo, hi in itertools.pairwise(edges.tolist()):
        if hi > lo:
            chunk = values[lo:hi]
            keep.add(lo + int(np.argmin(chunk)))
            keep.add(lo + int(np.argmax(chunk)))
    return sorted(keep)


class RunNotFoundError(ValueError):
    """The session's run has no row (yet): it is written when the session starts."""


def read_snapshot(engine: Engine, run_id: str, curve: CurveCache) -> dict[str, Any]:
    """The stored state of one run, as the dashboard and ``/api/state`` show it."""
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).first()
        if run is None:
            raise RunNotFoundError(f"run {run_id!r} is not in the database yet")
        curve.update(conn)
        positions = conn.execute(
            select(PositionRow).where(PositionRow.run_id == run_id).order_by(PositionRow.symbol)
        ).all()
        open_orders = conn.execute(
            select(OrderRow)
            .where(OrderRow.run_id == run_id, OrderRow.status == "OPEN")
            .order_by(OrderRow.seq)
        ).all()
        fills = conn.execute(
            select(FillRow)
            .where(FillRow.run_id == run_id)
            .order_by(FillRow.seq.desc())
            .limit(RECENT_FILLS)
        ).all()
        risk = conn.execute(
            select(RiskEventRow)
            .where(RiskEventRow.run_id == run_id)
            .order_by(RiskEventRow.seq.desc())
            .limit(RECENT_RISK_EVENTS)
        ).all()
        realized = conn.execute(
            select(func.coalesce(func.sum(TradeRow.pnl), 0.0)).where(TradeRow.run_id == run_id)
        ).scalar_one()
        counts = {
            name: conn.execute(
                select(func.count()).select_from(table).where(table.run_id == run_id)
            ).scalar_one()
            for name, table in (("orders", OrderRow), ("fills", FillRow), ("trades", TradeRow))
        }
    capital = float(json.loads(run.config_json).get("settings", {}).get("capital", 0.0))
    cash = capital if run.cash is None else float(run.cash)
    equity = curve.equity[-1] if curve.equity else cash
    peak = max(curve.equity) if curve.equity else equity
    position_rows = [
        {
            "symbol": p.symbol,
            "qty": p.qty,
            "avg_price": p.avg_price,
            "last_price": p.last_price,
            "market_value": p.qty * p.last_price,
            "unrealized": p.qty * (p.last_price - p.avg_price),
        }
        for p in positions
    ]
    return {
        "mode": run.mode,
        "run_id": run.run_id,
        "strategy": run.strategy,
        "status": run.status,
        "state": {"state": run.risk_state or "ACTIVE", "reason": run.risk_reason or ""},
        "bar": {
            "bars_processed": run.bars_processed,
            "last_bar_ts": run.last_bar_ts,
            "last_bar_time": ist(run.last_bar_ts),
        },
        "account": {
            "initial_capital": capital,
            "equity": equity,
            "cash": cash,
            "peak_equity": peak,
            "drawdown": curve.drawdown[-1] if curve.drawdown else 0.0,
            "max_drawdown": max(curve.drawdown) if curve.drawdown else 0.0,
            "realized_pnl": float(realized),
            "unrealized_pnl": sum(p["unrealized"] for p in position_rows),
            "gross_exposure": sum(abs(p["market_value"]) for p in position_rows),
        },
        "counts": counts,
        "positions": position_rows,
        "open_orders": [
            {
                "order_id": o.order_id,
                "time": ist(o.ts),
                "symbol": o.symbol,
                "side": _side(o.side),
                "qty": o.qty,
                "type": o.order_type,
                "limit_price": o.limit_price,
                "stop_price": o.stop_price,
                "status": o.status,
                "reason": o.reason,
            }
            for o in open_orders
        ],
        "fills": [
            {
                "order_id": f.order_id,
                "time": ist(f.ts),
                "symbol": f.symbol,
                "side": _side(f.side),
                "qty": f.qty,
                "price": f.price,
                "costs": f.costs,
                "reason": f.reason,
            }
            for f in fills
        ],
        "risk_events": [risk_event_dict(e) for e in risk],
        "curve": curve.points(),
    }
