"""Fixtures of the ``KiteBroker`` tests: a running fake Kite (INFY and SBIN known, INFY at
1510.5), a bus with an event log, and a builder of brokers pointed at the fake (stopped after
the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from brokers.kite.broker import KiteBroker
from engine.bus import EventBus
from tests.support.fake_kite.server import FakeKite
from tests.support.kite_broker import COSTS, Events


@pytest.fixture
async def fake() -> AsyncIterator[FakeKite]:
    async with FakeKite(heartbeat_s=0.2) as running:
        running.add_instrument(408065, "INFY")
        running.add_instrument(779521, "SBIN")
        running.prices["INFY"] = 1510.5
        yield running


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def events(bus: EventBus) -> Events:
    return Events(bus)


@pytest.fixture
async def make_broker(fake: FakeKite, bus: EventBus) -> AsyncIterator[Callable[..., KiteBroker]]:
    made: list[KiteBroker] = []

    def build(settings: dict[str, Any] | None = None, **options: Any) -> KiteBroker:
        options.setdefault("poll_interval_s", 0.2)
        broker = KiteBroker(
            bus,
            fake.settings(**(settings or {})),
            fake.credentials(),
            cost_model=COSTS,
            **options,
        )
        made.append(broker)
        return broker

    yield build
    for broker in made:
        await broker.stop()
