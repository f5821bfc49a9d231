"""Reading runs back: one place that turns stored rows into the dicts every reader uses
(``trader runs show``, reports, ``trader compare``, the dashboard)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Select, func, select

from engine.events import ts_to_ist
from engine.store.lease import LeaseView, db_now
from engine.store.schema import EquityRow, FillRow, OrderRow, RiskEventRow, RunRow, TradeRow


def trade_dict(
    symbol: str, side: int, qty: int, entry_ts_ns: int, entry_price: float, exit_ts_ns: int,
    exit_price: float, pnl: float, costs: float, exit_reason: str,
) -> dict[str, Any]:  # fmt: skip
    """The one shape a trade has outside the engine: JSON results, `runs show`, reports,
    `compare`."""
    return {
        "symbol": symbol,
        "side": "LONG" if side > 0 else "SHORT",
        "qty": qty,
        "entry_time": ts_to_ist(entry_ts_ns).isoformat(),
        "entry_price": entry_price,
        "exit_time": ts_to_ist(exit_ts_ns).isoformat(),
        "exit_price": exit_price,
        "pnl": pnl,
        "costs": costs,
        "exit_reason": exit_reason,
    }


def risk_event_dict(e: Any) -> dict[str, Any]:
    """A stored risk event for readers (runs show, dashboard)."""
    return {
        "time": ts_to_ist(e.ts).isoformat(),
        "kind": e.kind,
        "gate": e.gate,
        "symbol": e.symbol,
        "reason": e.reason,
        "state": e.state,
    }


def runs_query(conn: Connection) -> Select[RunRow, float]:
    """Runs with the database's clock beside them (``now``): what ``run_lease`` needs to tell a
    running run from a stale one."""
    return select(RunRow, db_now(conn).label("now"))


def run_lease(row: Any) -> LeaseView:
    """The lease of a row read through ``runs_query``; its ``effective_status`` is the status
    every reader shows (``stale`` for a ``running`` run that nobody runs)."""
    return LeaseView.from_row(row.run_id, row, row.now)


def load_run(engine: Any, run_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        run = conn.execute(runs_query(conn).where(RunRow.run_id == run_id)).first()
        if run is None:
            raise ValueError(f"no run {run_id!r} in {engine.url}")
        lease = run_lease(run)
        counts = {
            name: conn.execute(
                select(func.count()).select_from(table).where(table.run_id == run_id)
            ).scalar_one()
            for name, table in (("orders", OrderRow), ("fills", FillRow))
        }
        trades = conn.execute(
            select(TradeRow).where(TradeRow.run_id == run_id).order_by(TradeRow.entry_ts)
        ).all()
        risk = conn.execute(
            select(RiskEventRow).where(RiskEventRow.run_id == run_id).order_by(RiskEventRow.seq)
        ).all()
    return {
        "run_id": run.run_id,
        "mode": run.mode,
        "strategy": run.strategy,
        "status": lease.effective_status,
        "lease": lease.as_dict(),
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "code_version": run.code_version,
        "data_fingerprint": run.data_fingerprint,
        "bars_processed": run.bars_processed,
        "config": json.loads(run.config_json),
        "metrics": json.loads(run.metrics_json) if run.metrics_json else {},
        "data_quality": json.loads(run.quality_json) if run.quality_json else {},
        "error": run.error,
        "in_sample_fraction": run.in_sample_fraction,
        "model_data": json.loads(run.model_data_json) if run.model_data_json else None,
        "feed_kind": run.feed_kind,
        "sessions": json.loads(run.sessions_json) if run.sessions_json else [],
        "model_calls": json.loads(run.model_calls_json) if run.model_calls_json else None,
        **counts,
        "trades": [
            trade_dict(
                t.symbol,
                t.side,
                t.qty,
                t.entry_ts,
                t.entry_price,
                t.exit_ts,
                t.exit_price,
                t.pnl,
                t.costs,
                t.exit_reason,
            )
            for t in trades
        ],
        "risk_events": [risk_event_dict(e) for e in risk],
    }


def load_equity(engine: Engine, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's equity curve: UTC epoch-ns timestamps and equity, in time order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(EquityRow.ts, EquityRow.equity)
            .where(EquityRow.run_id == run_id)
            .order_by(EquityRow.ts)
        ).all()
    ts = np.array([r.ts for r in rows], dtype=np.int64)
    return ts, np.array([r.equity for r in rows], dtype=float)


def load_fills(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's fills in the order they happened, times in IST (as trades are)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(FillRow).where(FillRow.run_id == run_id).order_by(FillRow.seq)
        ).all()
    return [
        {
            "time": ts_to_ist(f.ts).isoformat(),
            "symbol": f.symbol,
            "side": "BUY" if f.side > 0 else "SELL",
            "qty": f.qty,
            "price": f.price,
            "costs": f.costs,
            "slippage": f.slippage,
            "order_id": f.order_id,
            "reason": f.reason,
        }
        for f in rows
    ]


def load_launch(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """How the run was started (``RunRow.launch_json``); None for a run stored before runs
    recorded it. A run that does not exist is named, as ``load_run`` does."""
    with engine.connect() as conn:
        row = conn.execute(select(RunRow.launch_json).where(RunRow.run_id == run_id)).first()
    if row is None:
        raise ValueError(f"no run {run_id!r} in {engine.url}")
    return None if row.launch_json is None else dict(json.loads(row.launch_json))
