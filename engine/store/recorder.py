"""Writes a run to the database: its orders, fills, risk events, trades and equity curve.

Rows are buffered from bus events and written in one transaction, so a run's rows appear
together or not at all (the backtest writes once at the end; the daemon per bar, and before each
order goes to the broker). Every write is conditional on this process owning the run.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, insert, select, update

from config.redact import scrub
from config.sessions import local_day
from engine.bus import EventBus
from engine.events import Fill, Order, OrderUpdate, RiskEvent
from engine.portfolio import Portfolio
from engine.store.lease import DEFAULT_LEASE_TIMEOUT_S, RunLease
from engine.store.retry import RetryPolicy, retry_sync
from engine.store.schema import (
    Base,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    RunRow,
    TradeRow,
)
from engine.version import code_version

EQUITY_TABLE = Base.metadata.tables["equity"]  # Core insert: 10x the ORM bulk path


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunRecorder:
    """Buffers a run's events and writes them, under the run's lease (``engine.store.lease``).

    ``lease_timeout_s``: how long this process may go without a heartbeat before another may
    take the run over; ``retry``: how long writes outside the bar loop (the new run's row, the
    lease, the final status) wait out a locked or unreachable database."""

    def __init__(
        self,
        engine: Engine,
        mode: str,
        run_id: str | None = None,
        *,
        lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.mode = mode
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.lease = RunLease(engine, self.run_id, lease_timeout_s, retry)
        self._orders: dict[str, dict[str, Any]] = {}
        self._new_orders: list[str] = []
        self._status: dict[str, tuple[str, str]] = {}
        self._fills: list[dict[str, Any]] = []
        self._risk: list[dict[str, Any]] = []
        self._known: set[str] = set()
        self._trades_written = 0
        self._equity_written = 0
        self._peak = -np.inf
        #: what the app layer measured about a model's training data against this run's
        #: period (``app/overlap.py``); written with the run's first row
        self.model_data: dict[str, Any] | None = None
        #: where the bars come from ("replay" or "kite"), set by the app layer; written with
        #: the run's first row (promotion counts only forward trading on live prices)
        self.feed_kind: str | None = None
        #: the wall clock (epoch seconds) that decides which sessions the run traded; tests
        #: inject one to drive several trading days through a live feed in seconds
        self.wall_clock: Callable[[], float] = time.time
        self._sessions: set[str] | None = None  # read from the row on the first bar committed
        #: how the app started the run (``app/commands/launch.py``); written with its first row
        self.launch: dict[str, Any] | None = None

    def start(
        self,
        strategy: str,
        config: dict[str, Any],
        data_fingerprint: str,
        spec_hash: str | None = None,
        model_hash: str | None = None,
    ) -> None:
        """Store a new run, owned by this process from its first row."""

        def insert_run() -> None:
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
                        in_sample_fraction=(
                            None
                            if self.model_data is None
                            else self.model_data["in_sample_fraction"]
                        ),
                        model_data_json=(
                            None if self.model_data is None else json.dumps(self.model_data)
                        ),
                        feed_kind=self.feed_kind,
                        launch_json=None if self.launch is None else json.dumps(self.launch),
                        **self.lease.claim_values(conn),
                    )
                )

        retry_sync(insert_run, self.lease.retry, f"storing run {self.run_id}")
        self.lease.held = True

    def resume_counts(self, trades: int, equity_points: int, peak: float) -> None:
        """A resumed run: what is already written must not be written again."""
        self._trades_written, self._equity_written, self._peak = trades, equity_points, peak

    def known_order(self, order_id: str) -> None:
        """An order already stored: later status changes are updates, not inserts."""
        self._known.add(order_id)

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(Order, self.on_order)
        bus.subscribe(OrderUpdate, self.on_order_update)
        bus.subscribe(Fill, self.on_fill)
        bus.subscribe(RiskEvent, self.on_risk)

    # ---- bus handlers --------------------------------------------------------------------------
    def on_order(self, o: Order) -> None:
        if o.order_id in self._known:
            return  # a restored order re-announced: it is stored already
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
                slippage=f.slippage,
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
    # Buffers are marked written only after the transaction commits: a commit that fails (a
    # locked file, a dropped connection) leaves every row buffered for the retry to write.
    def _write(self, conn: Connection, portfolio: Portfolio) -> Callable[[], None]:
        """Write everything buffered on an open connection (the caller owns the transaction);
        returns what marks it written, to call once the transaction has committed."""
        new_orders, statuses = len(self._new_orders), list(self._status)
        fills, risk = len(self._fills), len(self._risk)
        if new_orders:
            conn.execute(insert(OrderRow), [self._orders[i] for i in self._new_orders])
        for order_id, (status, reason) in self._status.items():
            values: dict[str, Any] = {"status": status}
            if reason:
                values["reason"] = reason
            conn.execute(
                update(OrderRow)
                .where(OrderRow.run_id == self.run_id, OrderRow.order_id == order_id)
                .values(**values)
            )
        if fills:
            conn.execute(insert(FillRow), self._fills)
        if risk:
            conn.execute(insert(RiskEventRow), self._risk)
        progress = self._write_progress(conn, portfolio)

        def written() -> None:
            del self._new_orders[:new_orders], self._fills[:fills], self._risk[:risk]
            for order_id in statuses:
                self._status.pop(order_id, None)
            self._trades_written, self._equity_written, self._peak = progress

        return written

    def _write_progress(self, conn: Any, portfolio: Portfolio) -> tuple[int, int, float]:
        """Closed trades and equity points not yet written (so a paper run writes each once);
        returns the counts and the drawdown peak once they are."""
        trades = portfolio.trades[self._trades_written :]
        if trades:
            conn.execute(
                insert(TradeRow),
                [
                    dict(
                        run_id=self.run_id, mode=self.mode, symbol=t.symbol, side=t.side,
                        qty=t.qty, entry_ts=t.entry_ts_ns, entry_price=t.entry_price,
                        exit_ts=t.exit_ts_ns, exit_price=t.exit_price, pnl=t.pnl,
                        costs=t.costs, exit_reason=t.exit_reason,
                    )
                    for t in trades
                ],
            )  # fmt: skip
        trades_written = self._trades_written + len(trades)
        start = self._equity_written
        equity = portfolio.curve_equity[start:]
        if not equity:
            return trades_written, start, self._peak
        curve = np.asarray(equity)
        peak = np.maximum.accumulate(np.concatenate([[self._peak], curve]))[1:]
        conn.execute(
            EQUITY_TABLE.insert(),
            [
                dict(run_id=self.run_id, mode=self.mode, ts=ts, equity=eq, gross=gr, drawdown=dd)
                for ts, eq, gr, dd in zip(
                    portfolio.curve_ts[start:], equity, portfolio.curve_gross[start:],
                    (1.0 - curve / peak).tolist(), strict=True,
                )
            ],
        )  # fmt: skip
        return trades_written, start + len(equity), float(peak[-1])

    def commit_bar(self, portfolio: Portfolio, bars_processed: int, state: Any) -> None:
        """One transaction per bar for paper/live: everything the bar caused, the equity point,
        positions and the account — the state a restart resumes from. Written only while this
        process owns the run (``LeaseLost`` otherwise, and nothing is written)."""
        with self.engine.begin() as conn:
            sessions = self._new_session(conn, portfolio.ts_ns)
            self.lease.guard(
                conn, bars_processed=bars_processed, last_bar_ts=portfolio.ts_ns,
                cash=portfolio.cash, risk_state=str(state.state), risk_reason=state.reason,
                **({} if sessions is None else {"sessions_json": json.dumps(sessions)}),
            )  # fmt: skip
            written = self._write(conn, portfolio)
            conn.execute(delete(PositionRow).where(PositionRow.run_id == self.run_id))
            holdings = portfolio.holdings()
            if holdings:
                conn.execute(
                    insert(PositionRow),
                    [
                        dict(
                            run_id=self.run_id, symbol=symbol, mode=self.mode, qty=qty,
                            avg_price=portfolio.avg_price(symbol),
                            last_price=portfolio.last_price(symbol), ts=portfolio.ts_ns,
                        )
                        for symbol, qty in sorted(holdings.items())
                    ],
                )  # fmt: skip
        written()
        if sessions is not None:
            self._sessions = set(sessions)

    def _new_session(self, conn: Connection, bar_ts_ns: int) -> list[str] | None:
        """All sessions traded, when the bar in hand adds one (else None): a session counts
        when a bar of that IST day is committed while the wall clock reads the same day — what
        a forward run on live prices does, and a replay of stored bars never does."""
        if not bar_ts_ns:
            return None
        day = local_day(bar_ts_ns)
        if day != local_day(int(self.wall_clock() * 1e9)):
            return None
        if self._sessions is None:  # a resumed run keeps the sessions it traded before
            stored = conn.execute(
                select(RunRow.sessions_json).where(RunRow.run_id == self.run_id)
            ).scalar()
            self._sessions = set(json.loads(stored)) if stored else set()
        text = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        if text in self._sessions:
            return None
        return sorted(self._sessions | {text})

    def resumed(self) -> None:
        """A restored run is running again, under this process's lease."""
        with self.engine.begin() as conn:
            self.lease.guard(conn, status="running", finished_at=None, error=None)

    def finish(
        self,
        *,
        status: str,
        portfolio: Portfolio,
        metrics: dict[str, float],
        quality: dict[str, Any],
        bars_processed: int,
        error: str | None = None,
    ) -> None:
        """The run's last rows and final status, and the lease released, in one transaction."""
        with self.engine.begin() as conn:
            self.lease.guard(
                conn, status=status, finished_at=_now(), bars_processed=bars_processed,
                last_bar_ts=portfolio.curve_ts[-1] if portfolio.curve_ts else None,
                cash=portfolio.cash, metrics_json=json.dumps(metrics, default=_json_float),
                quality_json=json.dumps(quality), error=None if error is None else scrub(error),
                **self.lease.release_values(),
            )  # fmt: skip
            written = self._write(conn, portfolio)
        written()
        self.lease.held = False


def store_model_calls(engine: Engine, run_id: str, calls: dict[str, Any]) -> None:
    """A finished run's model calls against realised labels (scored after the run, from the
    predictions it traded on), for ``trader report``."""
    with engine.begin() as conn:
        conn.execute(
            update(RunRow)
            .where(RunRow.run_id == run_id)
            .values(model_calls_json=json.dumps(calls, default=_json_float))
        )


def _json_float(value: Any) -> Any:
    return str(value)
