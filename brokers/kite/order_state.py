"""Kite's view of one order, and the arithmetic that turns it into fills reported exactly once.

The same order state reaches the broker by several paths: websocket order updates, the polled
order book, the order's trade list, a refresh after a cancel. They overlap and may arrive out of
order, so reporting is driven by quantities, which only grow: an execution is reported when the
filled quantity passes what was already reported, never because a message arrived.

``FillLedger`` keeps, per order, what has been reported. Kite's trades (with exchange trade ids
and exact prices) are preferred; when the trade book lags the order book (it can, briefly), the
missing quantity is reported at the price implied by the order's average price, and the trades
that later arrive for it are absorbed without being reported again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from brokers.kite.order_tags import order_tags
from config.redact import scrub
from engine.events import OrderStatus, OrderType, Side

TERMINAL = {
    "COMPLETE": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}


def _int(value: Any) -> int:
    try:
        return int(float(value or 0))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class KiteOrderSnapshot(NamedTuple):
    """The fields of a Kite order dict (order book row or websocket update) the broker uses."""

    kite_order_id: str
    tags: tuple[str, ...]
    kite_status: str  # Kite's own text: OPEN, TRIGGER PENDING, COMPLETE, ...
    symbol: str
    exchange: str
    product: str
    side: Side
    order_type: str
    quantity: int
    filled_qty: int
    average_price: float
    price: float
    trigger_price: float
    message: str

    @property
    def status(self) -> OrderStatus:
        """Engine status: terminal ones map; every live Kite state (TRIGGER PENDING, the
        various ... PENDING / REQ RECEIVED states, partial fills) is OPEN."""
        return TERMINAL.get(self.kite_status, OrderStatus.OPEN)

    @property
    def finished(self) -> bool:
        return self.kite_status in TERMINAL

    @property
    def executed_qty(self) -> int:
        """Filled quantity; a COMPLETE order has filled all of it whatever the field says."""
        if self.kite_status == "COMPLETE":
            return max(self.filled_qty, self.quantity)
        return self.filled_qty

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> KiteOrderSnapshot:
        side = Side.SELL if str(raw.get("transaction_type", "")).upper() == "SELL" else Side.BUY
        message = raw.get("status_message") or raw.get("status_message_raw") or ""
        return cls(
            kite_order_id=str(raw.get("order_id") or ""),
            tags=tuple(order_tags(raw)),
            kite_status=str(raw.get("status") or "").upper(),
            symbol=str(raw.get("tradingsymbol") or ""),
            exchange=str(raw.get("exchange") or ""),
            product=str(raw.get("product") or ""),
            side=side,
            order_type=str(raw.get("order_type") or OrderType.MARKET.value),
            quantity=_int(raw.get("quantity")),
            filled_qty=_int(raw.get("filled_quantity")),
            average_price=_float(raw.get("average_price")),
            price=_float(raw.get("price")),
            trigger_price=_float(raw.get("trigger_price")),
            message=scrub(str(message)),  # Kite's text enters the engine here
        )


class KiteTrade(NamedTuple):
    trade_id: str
    qty: int
    price: float

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> KiteTrade:
        return cls(
            str(raw.get("trade_id") or ""),
            _int(raw.get("quantity")),
            _float(raw.get("average_price")),
        )


class Execution(NamedTuple):
    """One fill to report: ``trade_id`` is empty where the trade book had not caught up."""

    qty: int
    price: float
    trade_id: str


@dataclass
class FillLedger:
    reported_qty: int = 0
    reported_value: float = 0.0
    trade_ids: set[str] = field(default_factory=set)
    untraded_qty: int = 0  # reported from the order book before its trades were seen

    def record_trades(self, trades: list[KiteTrade]) -> list[Execution]:
        """Executions for trades not seen before; trades covering quantity already reported
        without an id are absorbed."""
        out: list[Execution] = []
        for trade in trades:
            if not trade.trade_id or trade.trade_id in self.trade_ids or trade.qty <= 0:
                continue
            self.trade_ids.add(trade.trade_id)
            absorbed = min(self.untraded_qty, trade.qty)
            self.untraded_qty -= absorbed
            qty = trade.qty - absorbed
            if qty > 0:
                out.append(self._report(qty, trade.price, trade.trade_id))
        return out

    def catch_up(self, executed_qty: int, average_price: float) -> Execution | None:
        """The part of ``executed_qty`` no trade accounted for, at the price that makes the
        reported total match the order's average price."""
        qty = executed_qty - self.reported_qty
        if qty <= 0:
            return None
        price = (average_price * executed_qty - self.reported_value) / qty
        if price <= 0:  # average price missing or inconsistent: the best figure there is
            price = average_price
        self.untraded_qty += qty
        return self._report(qty, price, "")

    def booked(self, qty: int, value: float) -> None:
        """Quantity the engine booked before a restart (its stored fills): counted as reported,
        and, having no trade ids, absorbing the first trades Kite lists for it."""
        self.reported_qty, self.reported_value = qty, value
        self.untraded_qty = qty

    def _report(self, qty: int, price: float, trade_id: str) -> Execution:
        self.reported_qty += qty
        self.reported_value += qty * price
        return Execution(qty, price, trade_id)
