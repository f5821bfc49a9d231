from __future__ import annotations

from datetime import date, datetime

from config.calendar import NseCalendar
from config.sessions import IST, NSE
from config.settings import SessionSettings, load_settings


def test_sessions_skip_weekends_and_configured_holidays(monkeypatch):
    cal = NseCalendar(SessionSettings(holidays=(date(2024, 6, 10),)))
    saturday = datetime(2024, 6, 8, 10, 0, tzinfo=IST)
    start, end = cal.current_or_next(saturday)
    assert start == datetime(2024, 6, 11, 9, 15, tzinfo=IST)  # Monday the 10th is a holiday
    assert end == datetime(2024, 6, 11, 15, 30, tzinfo=IST)
    during = datetime(2024, 6, 11, 11, 0, tzinfo=IST)
    assert cal.current_or_next(during)[0] == start  # in progress: this one
    after = datetime(2024, 6, 11, 15, 45, tzinfo=IST)
    assert cal.current_or_next(after)[0] == datetime(2024, 6, 12, 9, 15, tzinfo=IST)
    monkeypatch.setenv("TRADER_SESSION__HOLIDAYS", '["2026-01-26"]')
    assert load_settings("paper").session.holidays == (date(2026, 1, 26),)


async def test_live_feed_idles_until_a_minute_before_the_next_session():
    import asyncio

    from brokers.kite.feed import KiteLiveSource
    from engine.universe import Universe

    stop = asyncio.Event()
    waited: list[float] = []
    connected: list[bool] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        stop.set()  # the operator stops the daemon during the weekend

    def client_factory(**_callbacks):
        connected.append(True)
        raise AssertionError("no connection outside a session")

    source = KiteLiveSource(
        client_factory, {1: "INFY"}, 5,
        calendar=NseCalendar(SessionSettings(holidays=(date(2024, 6, 10),))),
        now=lambda: datetime(2024, 6, 8, 10, 0, tzinfo=IST), sleep=sleep,
        session=NSE,
    )  # fmt: skip
    bars = [b async for b in source.stream(Universe(), iter(range(1, 99)).__next__, stop)]
    assert bars == [] and connected == []
    expected = datetime(2024, 6, 11, 9, 14, tzinfo=IST) - datetime(2024, 6, 8, 10, 0, tzinfo=IST)
    assert waited == [expected.total_seconds()]
