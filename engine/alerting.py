"""The run's events, worded for an operator's phone (``Alerts`` port), without touching the
trading path: each handler formats a line and hands it to ``alerts.alert``, which returns at
once (the notifier queues; see ``notify.telegram``).

What is sent: each fill; every trading-state change (REDUCING, HALTED — the kill switch among
them — and back to ACTIVE) with its gate and reason, which covers a stale feed (gate
``stale_data``) and broker trouble that halts; broker events an operator must act on or
should know (expired or renewed token, lost connection, unregistered IP, order errors,
market remainders); the session's start and stop; a summary at each day's end.
"""

from __future__ import annotations

from datetime import datetime

from config.sessions import IST
from engine.bus import EventBus
from engine.events import BrokerEvent, Fill, RiskEvent, Side
from engine.ports import Alerts

#: broker events worth a message (``reconciled`` is routine, and noisy on every start)
BROKER_KINDS = {
    "token_expired": "Kite token expired — run `trader kite login --request-token …`",
    "token_renewed": "Kite token renewed",
    "network": "Kite unreachable",
    "ip_not_allowed": "Kite refused this IP",
    "order_error": "Kite order problem",
    "rejected": "order rejected",
    "market_remainder": "market order remainder",
}


def _time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%H:%M:%S")


class AlertFeed:
    """Subscribes to the bus and words what an operator should hear about."""

    def __init__(self, bus: EventBus, alerts: Alerts, label: str = "") -> None:
        self._alerts = alerts
        self._prefix = f"[{label}] " if label else ""
        bus.subscribe(Fill, self.on_fill)
        bus.subscribe(RiskEvent, self.on_risk)
        bus.subscribe(BrokerEvent, self.on_broker)

    def send(self, text: str) -> None:
        self._alerts.alert(self._prefix + text)

    def on_fill(self, fill: Fill) -> None:
        side = "BUY" if fill.side == Side.BUY else "SELL"
        self.send(
            f"{_time(fill.ts_ns)} fill {side} {fill.qty} {fill.symbol} @ {fill.price:.2f} "
            f"(costs ₹{fill.costs:.2f})"
        )

    def on_risk(self, event: RiskEvent) -> None:
        if event.kind != "state":
            return  # a denied intent is routine (limits doing their job), not a page
        self.send(f"{_time(event.ts_ns)} trading {event.state}: {event.reason} [{event.gate}]")

    def on_broker(self, event: BrokerEvent) -> None:
        title = BROKER_KINDS.get(event.kind)
        if title is not None:
            self.send(f"{_time(event.ts_ns)} {title}: {event.message}")

    def session(self, what: str, mode: str, run_id: str) -> None:
        self.send(f"{mode} session {what} (run {run_id})")

    def daily_summary(
        self, day: str, pnl: float, trades: int, drawdown_pct: float, state: str
    ) -> None:
        self.send(
            f"{day} summary: P&L ₹{pnl:,.2f}, {trades} trades, drawdown {drawdown_pct:.2f}%, "
            f"trading {state}"
        )
