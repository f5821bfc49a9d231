"""Where intents become orders: the risk chain decides, approved orders go to the broker.

Also keeps the book of pending (approved, unfilled) quantity per symbol, which the risk gates
and ``StrategyContext.pending`` read so nobody double-orders while an order is in flight.
"""

from __future__ import annotations

from collections import defaultdict

from engine.bus import EventBus
from engine.events import (
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
    RiskEvent,
)
from engine.ports import Broker, RiskCheck, TradingStateMachinePort


class PendingBook:
    """Signed quantity of open orders per symbol."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, int] = defaultdict(int)
        self._orders: dict[str, tuple[str, int]] = {}  # order_id → (symbol, signed remaining)

    def pending(self, symbol: str) -> int:
        return self._by_symbol.get(symbol, 0)

    def add(self, order: Order) -> None:
        signed = int(order.side) * order.qty
        self._orders[order.order_id] = (order.symbol, signed)
        self._by_symbol[order.symbol] += signed

    def on_fill(self, fill: Fill) -> None:
        entry = self._orders.get(fill.order_id)
        if entry is None:
            return
        symbol, remaining = entry
        done = int(fill.side) * fill.qty
        self._by_symbol[symbol] -= done
        remaining -= done
        if remaining == 0:
            del self._orders[fill.order_id]
        else:
            self._orders[fill.order_id] = (symbol, remaining)

    def on_update(self, update: OrderUpdate) -> None:
        if update.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            entry = self._orders.pop(update.order_id, None)
            if entry is not None:
                self._by_symbol[entry[0]] -= entry[1]


class ExecutionStage:
    def __init__(
        self,
        bus: EventBus,
        chain: RiskCheck,
        broker: Broker,
        pending: PendingBook,
        state: TradingStateMachinePort,
        order_prefix: str = "o",
    ) -> None:
        self._bus = bus
        self._chain = chain
        self._broker = broker
        self._pending = pending
        self._state = state
        self._prefix = order_prefix
        self.orders = 0  # approved; also numbers the order ids
        self.denied = 0

    async def on_intent(self, intent: OrderIntent) -> None:
        decision = self._chain.check(intent)
        bus = self._bus
        if not decision.approved:
            self.denied += 1
            await bus.publish(
                RiskEvent(
                    intent.ts_ns,
                    bus.next_seq(),
                    "deny",
                    decision.gate,
                    intent.symbol,
                    decision.reason,
                    self._state.state,
                )
            )
            return
        self.orders += 1
        order = Order(
            intent.ts_ns,
            bus.next_seq(),
            f"{self._prefix}{self.orders}",
            intent.intent_id,
            intent.symbol,
            intent.side,
            intent.qty,
            intent.order_type,
            intent.limit_price,
            intent.stop_price,
            OrderStatus.OPEN,
            intent.reason,
        )
        self._pending.add(order)
        # publish, then submit: a daemon's session stores the order while it is published, so
        # no order reaches the broker without its row (engine/session.py, _before_broker)
        await bus.publish(order)
        await self._broker.submit(order)
