"""Rebuild a paper/live run's engine state from the database after a crash or a stop.

What the database holds is authoritative: positions, cash and trades are rebuilt by booking the
stored fills again in their original order (the same arithmetic, so the same numbers); open
orders go back to the broker; the trading state and the drawdown peak come from the stored
run and equity curve. Indicator state is not stored: the runner replays the bars before the
resume point through the decision handlers only (``Pipeline.warm``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from config.sessions import IST_OFFSET_NS, NS_PER_DAY, local_day
from engine.events import Fill, Order, OrderStatus, OrderType, Side, TradingState
from engine.pipeline import Pipeline
from engine.store.recorder import RunRecorder
from engine.store.schema import (
    EquityRow,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    RunRow,
)


class ResumeError(ValueError):
    """The run cannot be resumed as asked; the message says why."""


def check_resumable(
    engine: Engine, run_id: str, mode: str, config: dict[str, Any], fingerprint: str
) -> Any:
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).first()
    if run is None:
        raise ResumeError(f"no run {run_id!r} in {engine.url}")
    if run.mode != mode:
        raise ResumeError(f"run {run_id} is a {run.mode} run, not {mode}")
    if run.status == "finished":
        raise ResumeError(f"run {run_id} already finished; start a new run")
    stored = json.loads(run.config_json)
    current = json.loads(json.dumps(config, sort_keys=True, default=str))
    if stored != current:
        changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise ResumeError(
            f"run {run_id} was started with a different configuration ({', '.join(changed)} "
            "differ); resume with the same strategy, parameters and settings"
        )
    if run.data_fingerprint != fingerprint:
        raise ResumeError(f"run {run_id} replayed data {run.data_fingerprint}, not {fingerprint}")
    return run


async def restore(pipe: Pipeline, recorder: RunRecorder, run: Any) -> int:
    """Load the run's state into a freshly built pipeline; returns the last committed bar ts."""
    engine = recorder.engine
    pf = pipe.portfolio
    with engine.connect() as conn:
        fills = conn.execute(
            select(FillRow).where(FillRow.run_id == run.run_id).order_by(FillRow.seq)
        ).all()
        equity = conn.execute(
            select(EquityRow.ts, EquityRow.equity, EquityRow.gross)
            .where(EquityRow.run_id == run.run_id)
            .order_by(EquityRow.ts)
        ).all()
        orders = conn.execute(
            select(OrderRow).where(OrderRow.run_id == run.run_id).order_by(OrderRow.seq)
        ).all()
        positions = conn.execute(select(PositionRow).where(PositionRow.run_id == run.run_id)).all()
        gate = conn.execute(
            select(RiskEventRow.gate)
            .where(RiskEventRow.run_id == run.run_id, RiskEventRow.kind == "state")
            .order_by(RiskEventRow.seq.desc())
            .limit(1)
        ).scalar_one_or_none()
    for f in fills:
        pf.apply_fill(
            Fill(f.ts, f.seq, f.order_id, f.symbol, Side(f.side), f.qty, f.price, f.costs,
                 f.reason, slippage=f.slippage or 0.0)
        )  # fmt: skip
    for p in positions:
        pf.set_last_price(p.symbol, p.last_price)
    pf.curve_ts = [int(r.ts) for r in equity]
    pf.curve_equity = [float(r.equity) for r in equity]
    pf.curve_gross = [float(r.gross) for r in equity]
    if equity:
        pf.equity, pf.ts_ns = pf.curve_equity[-1], pf.curve_ts[-1]
    if run.cash is not None and not math.isclose(pf.cash, run.cash, rel_tol=0, abs_tol=1e-6):
        raise ResumeError(
            f"run {run.run_id}: cash rebuilt from fills ({pf.cash:.2f}) differs from the stored "
            f"cash ({run.cash:.2f}); the database is inconsistent, not resuming"
        )
    recorder.resume_counts(len(pf.trades), len(equity), max(pf.curve_equity, default=-math.inf))
    booked: dict[str, tuple[int, float, float]] = {}  # order id → filled qty, value, costs
    for f in fills:
        qty, value, costs = booked.get(f.order_id, (0, 0.0, 0.0))
        booked[f.order_id] = (qty + f.qty, value + f.qty * f.price, costs + f.costs)
    pipe.execution.orders = len(orders)
    for o in orders:
        recorder.known_order(o.order_id)
        if o.status != OrderStatus.OPEN:
            continue
        order = Order(
            o.ts, o.seq, o.order_id, o.intent_id, o.symbol, Side(o.side), o.qty,
            OrderType(o.order_type), _nan(o.limit_price), _nan(o.stop_price), OrderStatus.OPEN,
            o.reason,
        )  # fmt: skip
        pipe.pending.add(order)
        pipe.host.adopt_order(order)
        await pipe.broker.submit(order)
        if o.order_id in booked:  # partly filled: the broker must not report that part again
            pipe.broker.booked(o.order_id, *booked[o.order_id])
    with engine.connect() as conn:
        last_seq = max(
            conn.execute(select(func.max(table.seq)).where(table.run_id == run.run_id)).scalar_one()
            or 0
            for table in (OrderRow, FillRow, RiskEventRow)
        )
    pipe.bus.continue_after(last_seq)
    _restore_risk(pipe, run, equity, gate or "")
    return int(run.last_bar_ts or 0)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _restore_risk(pipe: Pipeline, run: Any, equity: Sequence[Any], gate: str) -> None:
    state = pipe.state
    state.state = TradingState(run.risk_state or TradingState.ACTIVE)
    state.reason = run.risk_reason or ""
    if state.state is not TradingState.ACTIVE:
        state.gate = gate  # what moved it last: a cure can lift only its own halt
    if not equity:
        return
    monitor = pipe.monitor
    capital = pipe.portfolio.initial_capital
    monitor.peak = max(capital, max(r.equity for r in equity))
    last_ts = int(equity[-1].ts)
    day = local_day(last_ts)
    monitor.restore_day(
        day=day,
        next_day_ns=(day + 1) * NS_PER_DAY - IST_OFFSET_NS,
        day_start=next(
            (float(r.equity) for r in reversed(equity) if local_day(int(r.ts)) < day), capital
        ),
        last_equity=float(equity[-1].equity),
    )
