"""Tables. Timestamps are UTC epoch nanoseconds (BigInteger): exact, zone-free and sortable on
every backend; readers convert to IST. Every row carries the run's ``mode``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: the feeds a run records in ``runs.feed_kind``: Kite's live prices as they happen, or stored
#: bars replayed at any pace (research — never paper evidence for a promotion)
KITE_FEED, REPLAY_FEED = "kite", "replay"


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mode: Mapped[str] = mapped_column(String(8))
    strategy: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    config_json: Mapped[str] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(String(64))
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    spec_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bars_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    last_bar_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    metrics_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    quality_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # live state of a paper/live run, committed with every bar (crash recovery reads these)
    cash: Mapped[float | None] = mapped_column(Float, nullable=True)
    risk_state: Mapped[str | None] = mapped_column(String(10), nullable=True)
    risk_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # a run that trades a model: the share of its symbol-bars inside the model's training or
    # validation periods (NULL: no model, or not measurable) and the full measure as JSON
    # (provenance basis, per symbol), written by the app layer when the run starts
    in_sample_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_data_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # where the run's bars came from: "replay" (stored bars, at any speed: research) or "kite"
    # (live prices as they happen); NULL in runs stored before feeds were recorded
    feed_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # the trading sessions the run actually traded, by the wall clock: a JSON list of IST dates
    # on which it processed a bar of that same day (``RunRecorder.commit_bar``); a replay of
    # old bars never adds one, whatever its speed
    sessions_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # a model's calls on the run's bars against the labels realised in them (accuracy,
    # confusion matrix), when the backtest scored them: what the report shows
    model_calls_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # how the run was started (feed, data, dates, strategy and its flags) as JSON, written by
    # the app layer, so `trader paper --resume RUN_ID` needs nothing but the id
    launch_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the one process that may write the run (engine/store/lease.py); times are the database
    # clock's UTC epoch seconds. Nullable: added in place to databases made before leases.
    lease_owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_acquired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)


def _run_fk() -> Mapped[str]:
    return mapped_column(String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)


class OrderRow(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _run_fk()
    mode: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[str] = mapped_column(String(64))
    intent_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[int] = mapped_column(Integer)
    qty: Mapped[int] = mapped_column(Integer)
    order_type: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (Index("ix_orders_run_order", "run_id", "order_id", unique=True),)


class FillRow(Base):
    __tablename__ = "fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _run_fk()
    mode: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[int] = mapped_column(Integer)
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Float)
    costs: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: rupees against the decision price (``Fill.slippage``); NULL in databases made before
    slippage: Mapped[float | None] = mapped_column(Float, nullable=True)


class TradeRow(Base):
    __tablename__ = "trades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _run_fk()
    mode: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[int] = mapped_column(Integer)
    qty: Mapped[int] = mapped_column(Integer)
    entry_ts: Mapped[int] = mapped_column(BigInteger)
    entry_price: Mapped[float] = mapped_column(Float)
    exit_ts: Mapped[int] = mapped_column(BigInteger)
    exit_price: Mapped[float] = mapped_column(Float)
    pnl: Mapped[float] = mapped_column(Float)
    costs: Mapped[float] = mapped_column(Float)
    exit_reason: Mapped[str] = mapped_column(Text, default="")


class EquityRow(Base):
    __tablename__ = "equity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _run_fk()
    mode: Mapped[str] = mapped_column(String(8))
    ts: Mapped[int] = mapped_column(BigInteger)
    equity: Mapped[float] = mapped_column(Float)
    gross: Mapped[float] = mapped_column(Float)
    drawdown: Mapped[float] = mapped_column(Float)


class PositionRow(Base):
    """Current position per symbol of a run (upserted with each bar of a paper/live run)."""

    __tablename__ = "positions"
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(8))
    qty: Mapped[int] = mapped_column(Integer)
    avg_price: Mapped[float] = mapped_column(Float)
    last_price: Mapped[float] = mapped_column(Float)
    ts: Mapped[int] = mapped_column(BigInteger)


class PromotionRow(Base):
    """A promotion decision (approved or refused) with the evidence it was taken on."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[str] = mapped_column(String(40))
    to_mode: Mapped[str] = mapped_column(String(8))
    strategy_key: Mapped[str] = mapped_column(String(64), index=True)
    approved: Mapped[bool] = mapped_column(Boolean)
    evidence_json: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(String(64))


class RiskEventRow(Base):
    __tablename__ = "risk_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = _run_fk()
    mode: Mapped[str] = mapped_column(String(8))
    ts: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    gate: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10))
