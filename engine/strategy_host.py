"""Runs one strategy on the bus and is its ``StrategyContext``.

The host is the strategy's only window: it forwards slices and the strategy's own fills, answers
position questions from the portfolio's read interface, and publishes the intents the strategy
emitted once its handler has returned (so a strategy can never interleave with its own orders).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Protocol

import numpy as np

from engine.bus import EventBus
from engine.events import BarSlice, FeatureSlice, Fill, Order, OrderIntent, OrderType, Side
from engine.ports import PendingView, Strategy


class PositionReader(Protocol):
    """The part of the portfolio a strategy may read."""

    def qty(self, symbol: str) -> int: ...

    def qty_by_sid(self) -> np.ndarray: ...

    @property
    def equity(self) -> float: ...


class StrategyHost:
    def __init__(
        self, bus: EventBus, strategy: Strategy, positions: PositionReader, pending: PendingView
    ) -> None:
        self._bus = bus
        self.strategy = strategy
        self._positions = positions
        self._pending = pending
        self._outbox: list[OrderIntent] = []
        self._ts = 0
        self._id_ts = 0
        self._id_n = 0
        self.warming = False  # replaying history to rebuild state: intents are discarded
        self._my_orders: set[str] = set()

    # ---- StrategyContext ---------------------------------------------------------------------
    @property
    def ts_ns(self) -> int:
        return self._ts

    def position(self, symbol: str) -> int:
        return self._positions.qty(symbol)

    def pending(self, symbol: str) -> int:
        return self._pending.pending(symbol)

    def positions_by_sid(self) -> np.ndarray:
        return self._positions.qty_by_sid()

    def equity(self) -> float:
        return float(self._positions.equity)

    def submit(
        self,
        symbol: str,
        side: Side,
        qty: int,
        order_type: OrderType = OrderType.MARKET,
        limit_price: float = math.nan,
        stop_price: float = math.nan,
        reason: str = "",
    ) -> None:
        if qty <= 0:
            raise ValueError(f"{self.strategy.name}: order quantity must be positive, got {qty}")
        if self._ts != self._id_ts:
            self._id_ts, self._id_n = self._ts, 0
        self._id_n += 1
        # derived from the bar and the order within it: the same run gives the same ids,
        # including a run resumed after a crash
        intent_id = f"{self.strategy.name}-{self._ts}-{self._id_n}"
        self._outbox.append(
            OrderIntent(
                self._ts,
                0,
                intent_id,
                self.strategy.name,
                symbol,
                Side(side),
                int(qty),
                OrderType(order_type),
                limit_price,
                stop_price,
                reason,
            )
        )

    def target(self, symbol: str, qty: int, reason: str = "") -> None:
        delta = qty - self.position(symbol) - self.pending(symbol)
        if delta:
            self.submit(symbol, Side.BUY if delta > 0 else Side.SELL, abs(delta), reason=reason)

    # ---- bus handlers -------------------------------------------------------------------------
    def start(self) -> None:
        self.strategy.on_start(self)

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        self._ts = bars.ts_ns
        self.strategy.on_bars(bars, self)
        return self._flush() if self._outbox else None

    def on_features(self, features: FeatureSlice) -> Awaitable[None] | None:
        self._ts = features.ts_ns
        self.strategy.on_features(features, self)
        return self._flush() if self._outbox else None

    def owns(self, intent_id: str) -> bool:
        """Whether an intent id (``name-ts-n``) is this strategy's. Read from the id itself, so
        nothing is remembered per intent (denied and warm-up intents never become orders), and
        an order announced late, or restored after a restart, is recognised all the same."""
        return intent_id.rsplit("-", 2)[0] == self.strategy.name

    def on_order(self, order: Order) -> None:
        if self.owns(order.intent_id):
            self._my_orders.add(order.order_id)

    def on_fill(self, fill: Fill) -> Awaitable[None] | None:
        if fill.order_id not in self._my_orders:
            return None
        self._ts = fill.ts_ns
        self.strategy.on_fill(fill, self)
        return self._flush() if self._outbox else None

    def adopt_order(self, order: Order) -> None:
        """An order of this strategy restored after a restart (still open at the broker)."""
        self.on_order(order)

    async def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self.warming:
            return
        bus = self._bus
        for intent in outbox:
            await bus.publish(intent._replace(seq=bus.next_seq()))
