"""What only the running process knows about a session (feed lag, decision latency, the
in-memory trading state and account), and the Prometheus metrics built from it.

The in-memory numbers are copied on the event loop (``live_status``, ``capture_live_numbers``);
everything that reads the database takes an engine and a run id, not the session, so it can run
in a worker thread (``app.web.read_cache``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from app.web.prometheus import Exposition, Histogram
from engine.events import TradingState
from engine.session import TradingSession
from engine.store.schema import FillRow, OrderRow, RiskEventRow


def live_status(session: TradingSession) -> dict[str, Any]:
    """The process-side numbers for ``/api/state`` (under ``live``)."""
    status, pipe = session.status, session.pipe
    window = np.asarray(status.decision_latency_s, dtype=float)
    p50, p99 = (np.percentile(window, [50, 99]) * 1e3).tolist() if window.size else (None, None)
    return {
        "bars_processed": status.bars_processed,
        "last_bar_ts": status.last_bar_ts,
        "feed_lag_s": status.feed_lag_s,
        # replay: time is the bars' time, so there is no lag to show (the dashboard says so)
        "clock": status.clock,
        "latency_ms": {"p50": p50, "p99": p99, "window": int(window.size)},
        "trading_state": str(pipe.state.state),
        "reason": pipe.state.reason,
        "equity": pipe.portfolio.equity,
        "open_orders": len(pipe.broker.open_orders()),
        "finished": status.finished,
        "stopping": session.stop.is_set(),
    }


def stored_counts(engine: Engine, run_id: str) -> dict[str, dict[str, int]]:
    """Orders by status, fills, risk events by kind — counted from the database, which a
    restarted daemon continues, so the counters keep growing across restarts of one run.
    Database reads only: safe in a worker thread."""
    with engine.connect() as conn:
        orders = conn.execute(
            select(OrderRow.status, func.count())
            .where(OrderRow.run_id == run_id)
            .group_by(OrderRow.status)
        ).all()
        fills = conn.execute(
            select(func.count()).select_from(FillRow).where(FillRow.run_id == run_id)
        ).scalar_one()
        risk = conn.execute(
            select(RiskEventRow.kind, func.count())
            .where(RiskEventRow.run_id == run_id)
            .group_by(RiskEventRow.kind)
        ).all()
    return {
        "orders": {str(status): int(n) for status, n in orders},
        "fills": {"all": int(fills)},
        "risk": {str(kind): int(n) for kind, n in risk},
    }


@dataclass(frozen=True)
class LiveNumbers:
    """The in-memory half of ``/metrics``, copied on the event loop (the session mutates these
    objects between awaits), so the page can be rendered in a worker thread."""

    mode: str
    run_id: str
    strategy: str
    bars_processed: int
    last_bar_ts: int
    feed_lag_s: float
    latency: Histogram
    open_orders: int
    positions: int
    equity: float
    cash: float
    pnl: float
    realized: float
    unrealized: float
    gross_exposure: float
    peak: float
    trading_state: str


def capture_live_numbers(session: TradingSession, latency: Histogram) -> LiveNumbers:
    """Account numbers from the live portfolio (current between bars too)."""
    status, pipe = session.status, session.pipe
    pf, peak = pipe.portfolio, pipe.monitor.peak
    holdings = pf.holdings()
    return LiveNumbers(
        mode=status.mode,
        run_id=status.run_id,
        strategy=pipe.host.strategy.name,
        bars_processed=status.bars_processed,
        last_bar_ts=status.last_bar_ts,
        feed_lag_s=status.feed_lag_s,
        latency=latency.copy(),
        open_orders=len(pipe.broker.open_orders()),
        positions=len(holdings),
        equity=pf.equity,
        cash=pf.cash,
        pnl=pf.equity - pf.initial_capital,
        realized=pf.realized,
        unrealized=sum(q * (pf.last_price(s) - pf.avg_price(s)) for s, q in holdings.items()),
        gross_exposure=pf.gross_exposure(),
        peak=peak,
        trading_state=str(pipe.state.state),
    )


def render_metrics(live: LiveNumbers, counts: dict[str, dict[str, int]]) -> str:
    """The ``/metrics`` page from the live numbers and the stored counts (``stored_counts``)."""
    out = Exposition({"mode": live.mode})
    out.labelled(
        "trader_run_info", "gauge", "The running session (value always 1).",
        [({"run_id": live.run_id, "strategy": live.strategy}, 1)],
    )  # fmt: skip
    out.counter("trader_bars_processed_total", "Bar slices processed.", live.bars_processed)
    out.gauge(
        "trader_last_bar_timestamp_seconds",
        "Start of the last processed bar, Unix time.",
        live.last_bar_ts / 1e9,
    )
    out.gauge(
        "trader_feed_lag_seconds",
        "Wall clock minus the time the last bar became known (its end).",
        live.feed_lag_s,
    )
    out.histogram(
        "trader_decision_latency_seconds",
        "Bar published to its last handler done (orders submitted), per bar.",
        live.latency,
    )
    out.counter(
        "trader_orders_total", "Orders accepted by risk and stored.", sum(counts["orders"].values())
    )
    out.labelled(
        "trader_orders", "gauge", "Stored orders by current status.",
        [({"status": s}, n) for s, n in sorted(counts["orders"].items())],
    )  # fmt: skip
    out.gauge("trader_open_orders", "Orders open at the broker now.", live.open_orders)
    out.counter("trader_fills_total", "Stored fills.", counts["fills"]["all"])
    out.labelled(
        "trader_risk_events_total", "counter", "Stored risk events by kind (deny, state).",
        [({"kind": k}, n) for k, n in sorted(counts["risk"].items())],
    )  # fmt: skip
    out.gauge("trader_positions", "Symbols with a non-zero position.", live.positions)
    out.gauge("trader_equity_rupees", "Cash plus positions at the last price.", live.equity)
    out.gauge("trader_cash_rupees", "Cash.", live.cash)
    out.gauge("trader_pnl_rupees", "Equity minus initial capital.", live.pnl)
    out.gauge(
        "trader_realized_pnl_rupees",
        "Realized P&L (average cost), net of all costs paid.",
        live.realized,
    )
    out.gauge(
        "trader_unrealized_pnl_rupees", "Open positions at last price vs cost.", live.unrealized
    )
    out.gauge("trader_gross_exposure_rupees", "Sum of |position value|.", live.gross_exposure)
    out.gauge("trader_peak_equity_rupees", "Highest equity of the session.", live.peak)
    out.gauge(
        "trader_drawdown_ratio",
        "1 - equity / peak equity.",
        1.0 - live.equity / live.peak if live.peak > 0 else 0.0,
    )
    out.labelled(
        "trader_trading_state", "gauge", "1 for the current trading state, 0 for the others.",
        [({"state": str(s)}, float(live.trading_state == str(s))) for s in TradingState],
    )  # fmt: skip
    return out.text()
