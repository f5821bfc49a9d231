"""The broker interface, shared by the simulated broker and the Kite broker.

A broker accepts risk-approved ``Order``s and reports back on the bus it was constructed with:
``OrderUpdate`` for lifecycle changes (rejected, cancelled, filled) and ``Fill`` for executions.
It makes no risk decisions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable

from engine.events import BarSlice, Order


class Broker(ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and reconcile open orders and positions with the account before trading."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections; open orders stay as they are at the broker."""

    @abstractmethod
    async def submit(self, order: Order) -> None:
        """Accept an approved order. Must be idempotent on ``order.order_id``."""

    @abstractmethod
    async def cancel(self, order_id: str, reason: str = "") -> None:
        """Cancel an open order; unknown or finished orders are ignored."""

    @abstractmethod
    def open_orders(self) -> list[Order]:
        """Orders accepted and not yet finished, in submission order."""

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        """Market data for brokers that simulate execution on it; real brokers ignore it.

        A bus handler: returns an awaitable only when it has async work this bar."""
        return None
