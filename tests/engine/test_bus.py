from __future__ import annotations

import pytest

from engine.bus import EventBus, HandlerError
from engine.events import Heartbeat


def beat(bus: EventBus, source: str = "t") -> Heartbeat:
    return Heartbeat(1_000, bus.next_seq(), source)


async def test_delivery_in_subscription_order_sync_and_async():
    bus = EventBus()
    seen: list[str] = []

    def first(e):
        seen.append("first")

    async def second(e):
        seen.append("second")

    def third(e):
        async def later():
            seen.append("third-async")

        seen.append("third")
        return later()

    def fourth(e):
        seen.append("fourth")

    for h in (first, second, third, fourth):
        bus.subscribe(Heartbeat, h)
    await bus.publish(beat(bus))
    assert seen == ["first", "second", "third", "third-async", "fourth"]


async def test_nested_publish_is_depth_first():
    bus = EventBus()
    seen: list[str] = []

    async def outer(e):
        if e.source == "outer":
            seen.append("outer-start")
            await bus.publish(Heartbeat(e.ts_ns, bus.next_seq(), "inner"))
            seen.append("outer-end")
        else:
            seen.append("inner")

    bus.subscribe(Heartbeat, outer)
    await bus.publish(beat(bus, "outer"))
    assert seen == ["outer-start", "inner", "outer-end"]


async def test_handler_error_names_handler_and_event():
    bus = EventBus()

    def broken(e):
        raise ZeroDivisionError("boom")

    after: list[int] = []
    bus.subscribe(Heartbeat, broken)
    bus.subscribe(Heartbeat, lambda e: after.append(1))
    event = beat(bus)
    with pytest.raises(HandlerError) as info:
        await bus.publish(event)
    assert "broken" in str(info.value) and "Heartbeat" in str(info.value)
    assert f"seq={event.seq}" in str(info.value)
    assert info.value.event is event and isinstance(info.value.__cause__, ZeroDivisionError)
    assert after == []  # the run stops at the failing handler


async def test_async_handler_error_after_awaitable_is_wrapped():
    bus = EventBus()

    def ok(e):
        async def fine():
            return None

        return fine()

    async def bad(e):
        raise KeyError("x")

    bus.subscribe(Heartbeat, ok)
    bus.subscribe(Heartbeat, bad)
    with pytest.raises(HandlerError, match="bad"):
        await bus.publish(beat(bus))


def test_sequence_numbers_strictly_increase():
    bus = EventBus()
    numbers = [bus.next_seq() for _ in range(5)]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1
