"""Writes a run to the database: its orders, fills, risk events, trades and equity curve.

Rows are buffered from bus events and written with ``flush`` in one transaction, so a run's rows
appear together or not at all (the backtest flushes once at the end; the daemon per bar).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, update

from engine.events import Fill, Order, OrderUpdate, RiskEvent
from engine.metrics import drawdown_series
from engine.portfolio import Trade
from engine.store.schema import Base, FillRow, OrderRow, RiskEventRow, RunRow, TradeRow
from engine.version import code_version

EQUITY_TABLE = Base.metadata.tables["equity"]  # Core insert: 10x the ORM bulk path


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunRecorder:
    def __init__(self, engine: Engine, mode: str) -> None:
        self.engine = engine
        self.mode = mode
        self.run_id = uuid.uuid4().hex[:12]
        self._orders: dict[str, dict[str, Any]] = {}
        self._new_orders: list[str] = []
        self._status: dict[str, tuple[str, str]] = {}
        self._fills: list[dict[str, Any]] = []
        self._risk: list[dict[str, Any]] = []

    def start(
        self,
        strategy: str,
        config: dict[str, Any],
        data_fingerprint: str,
        spec_hash: str | None = None,
        model_hash: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(RunRow).values(
                    run_id=self.run_id,
                    mode=self.mode,
                    strategy=strategy,
                    status="running",
                    created_at=_now(),
                    config_json=json.dumps(config, sort_keys=True, default=str),
                    code_version=code_version(),
                    data_fingerprint=data_fingerprint,
                    spec_hash=spec_hash,
                    model_hash=model_hash,
                    bars_processed=0,
                )
            )

    # ---- bus handlers --------------------------------------------------------------------------
    def on_order(self, o: Order) -> None:
        self._orders[o.order_id] = dict(
            run_id=self.run_id,
            mode=self.mode,
            order_id=o.order_id,
            intent_id=o.intent_id,
            ts=o.ts_ns,
            seq=o.seq,
            symbol=o.symbol,
            side=int(o.side),
            qty=o.qty,
            order_type=str(o.order_type),
            limit_price=_nan_to_none(o.limit_price),
            stop_price=_nan_to_none(o.stop_price),
            status=str(o.status),
            reason=o.reason,
        )
        self._new_orders.append(o.order_id)

    def on_order_update(self, u: OrderUpdate) -> None:
        row = self._orders.get(u.order_id)
        if row is not None and u.order_id in self._new_orders:
            row["status"] = str(u.status)
            if u.reason:
                row["reason"] = u.reason
        else:
            self._status[u.order_id] = (str(u.status), u.reason)

    def on_fill(self, f: Fill) -> None:
        self._fills.append(
            dict(
                run_id=self.run_id,
                mode=self.mode,
                order_id=f.order_id,
                ts=f.ts_ns,
                seq=f.seq,
                symbol=f.symbol,
                side=int(f.side),
                qty=f.qty,
                price=f.price,
                costs=f.costs,
                reason=f.reason,
            )
        )

    def on_risk(self, e: RiskEvent) -> None:
        self._risk.append(
            dict(
                run_id=self.run_id,
                mode=self.mode,
                ts=e.ts_ns,
                seq=e.seq,
                kind=e.kind,
                gate=e.gate,
                symbol=e.symbol,
                reason=e.reason,
                state=str(e.state),
            )
        )

    # ---- writing -----------------------------------------------------------------------------
    def flush(self, conn: Any) -> None:
        """Write buffered events on an open connection (the caller owns the transaction)."""
        if self._new_orders:
            conn.execute(insert(OrderRow), [self._orders[i] for i in self._new_orders])
            self._new_orders = []
        for order_id, (status, reason) in self._status.items():
            values: dict[str, Any] = {"status": status}
            if reason:
                values["reason"] = reason
            conn.execute(
                update(OrderRow)
                .where(OrderRow.run_id == self.run_id, OrderRow.order_id == order_id)
                .values(**values)
            )
        self._status = {}
        if self._fills:
            conn.execute(insert(FillRow), self._fills)
            self._fills = []
        if self._risk:
            conn.execute(insert(RiskEventRow), self._risk)
            self._risk = []

    def finish(
        self,
        *,
        status: str,
        trades: list[Trade],
        curve_ts: np.ndarray,
        curve_equity: np.ndarray,
        curve_gross: np.ndarray,
        metrics: dict[str, float],
        quality: dict[str, Any],
        bars_processed: int,
        error: str | None = None,
    ) -> None:
        drawdown = drawdown_series(curve_equity) if curve_equity.size else curve_equity
        with self.engine.begin() as conn:
            self.flush(conn)
            if trades:
                conn.execute(
                    insert(TradeRow),
                    [
                        dict(
                            run_id=self.run_id,
                            mode=self.mode,
                            symbol=t.symbol,
                            side=t.side,
                            qty=t.qty,
                            entry_ts=t.entry_ts_ns,
                            entry_price=t.entry_price,
                            exit_ts=t.exit_ts_ns,
                            exit_price=t.exit_price,
                            pnl=t.pnl,
                            costs=t.costs,
                            exit_reason=t.exit_reason,
                        )
                        for t in trades
                    ],
                )
            if curve_ts.size:
                conn.execute(
                    EQUITY_TABLE.insert(),
                    [
                        dict(
                            run_id=self.run_id,
                            mode=self.mode,
                            ts=ts,
                            equity=eq,
                            gross=gr,
                            drawdown=dd,
                        )
                        for ts, eq, gr, dd in zip(
                            curve_ts.tolist(),
                            curve_equity.tolist(),
                            curve_gross.tolist(),
                            drawdown.tolist(),
                            strict=True,
                        )
                    ],
                )
            conn.execute(
                update(RunRow)
                .where(RunRow.run_id == self.run_id)
                .values(
                    status=status,
                    finished_at=_now(),
                    bars_processed=bars_processed,
                    last_bar_ts=int(curve_ts[-1]) if curve_ts.size else None,
                    metrics_json=json.dumps(metrics, default=_json_float),
                    quality_json=json.dumps(quality),
                    error=error,
                )
            )


def _json_float(value: Any) -> Any:
    return str(value)
