"""What the ``KiteBroker`` tests share: an event log, order builders, waiting on a condition,
and reading the fake Kite's order book by tag. The fixtures are in
``tests/brokers/kite/conftest.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kiteconnect import KiteConnect

from brokers.costs import make_cost_model
from config.settings import CostSettings
from engine.bus import EventBus
from engine.events import (
    BrokerEvent,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from tests.support.fake_kite.server import FakeKite

COSTS = make_cost_model(CostSettings())
NAN = float("nan")


class Events:
    """Everything the broker publishes, in publication order."""

    def __init__(self, bus: EventBus) -> None:
        self.all: list[Any] = []
        for kind in (OrderUpdate, Fill, BrokerEvent):
            bus.subscribe(kind, self.all.append)

    def fills(self, order_id: str | None = None) -> list[Fill]:
        return [e for e in self.all if isinstance(e, Fill) and order_id in (None, e.order_id)]

    def updates(self, order_id: str | None = None) -> list[OrderUpdate]:
        return [
            e for e in self.all if isinstance(e, OrderUpdate) and order_id in (None, e.order_id)
        ]

    def broker_events(self, kind: str | None = None) -> list[BrokerEvent]:
        return [e for e in self.all if isinstance(e, BrokerEvent) and kind in (None, e.kind)]

    def final(self, order_id: str) -> OrderUpdate | None:
        done = [u for u in self.updates(order_id) if u.status != OrderStatus.OPEN]
        return done[-1] if done else None


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def make_order(
    order_id: str,
    *,
    symbol: str = "INFY",
    side: Side = Side.BUY,
    qty: int = 2,
    kind: OrderType = OrderType.MARKET,
    limit: float = NAN,
    stop: float = NAN,
) -> Order:
    return Order(
        1, 1, order_id, f"i-{order_id}", symbol, side, qty, kind, limit, stop, OrderStatus.OPEN
    )


def limit_order(order_id: str, qty: int = 5, price: float = 1500.0) -> Order:
    return make_order(order_id, qty=qty, kind=OrderType.LIMIT, limit=price)


def orders_tagged(fake: FakeKite, tag: str) -> list[dict[str, Any]]:
    return [h[-1] for h in fake.orders.values() if h[-1].get("tag") == tag]


def place_with_tag(fake: FakeKite, tag: str, **extra: Any) -> str:
    kite = KiteConnect(fake.api_key, fake.credentials().access_token, root=fake.api_root)
    params: dict[str, Any] = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "SELL",
        "quantity": 4,
        "product": "MIS",
        "order_type": "LIMIT",
        "price": 1600.0,
        "tag": tag,
    }
    params.update(extra)
    return str(kite.place_order(**params))
