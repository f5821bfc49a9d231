"""Forward paper trading on (the fake) Kite's live prices over several trading days, in seconds.

The run's wall clock is injected (``trading_session(wall_clock=…)``) and follows the ticks the
test pushes, as a real clock follows a real market: so a session counted here is one the run
traded while the clock read that day — what ``risk.promotion`` counts as paper evidence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from config.sessions import IST
from config.settings import EngineSettings, load_settings
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support import PARAMS
from tests.support.fake_kite.server import FakeKite

INFY = 408065
#: one session's prices for sma_cross(2, 6): down, a strong rise (BUY), a dip (SELL) above the
#: entry — a profitable day
PROFIT_DAY = [100, 99, 98, 97, 96, 95, 94, 100, 110, 120, 130, 140, 150, 160, 150, 138, 125, 120]
PROFIT_DAY.append(118)  # closes the bar the SELL fills on


def tick(ts: datetime, price: float, cum: int, token: int = INFY) -> dict[str, Any]:
    """A full-mode Kite tick at ``ts`` (also its exchange timestamp)."""
    return {
        "tradable": True,
        "mode": "full",
        "instrument_token": token,
        "last_price": price,
        "last_traded_quantity": 1,
        "average_traded_price": price,
        "volume_traded": cum,
        "total_buy_quantity": 0,
        "total_sell_quantity": 0,
        "ohlc": {"open": 100.0, "high": 120.0, "low": 80.0, "close": 100.0},
        "last_trade_time": ts,
        "exchange_timestamp": ts,
    }


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass (no exception: callers assert
    on the outcome itself)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def trading_days(first: date, count: int) -> list[date]:
    """``count`` weekdays from ``first`` (the fake market keeps no holidays)."""
    days: list[date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


async def kite_paper_run(
    engine: Engine,
    sessions: int,
    params: SmaCrossParams = PARAMS,
    settings: EngineSettings | None = None,
    first_day: date = date(2024, 6, 3),
    prices: list[int] = PROFIT_DAY,
    clock_lag_days: int = 0,
    resume: str | None = None,
) -> str:
    """A ``trader paper --feed kite`` run of sma_cross on INFY through the fake Kite, one
    ``prices`` path per trading day from 09:15 IST, the wall clock ten seconds behind each tick
    (and ``clock_lag_days`` days later: old bars pushed as if live); returns its run id
    (stopped by its operator after the last day, as a daemon would be). ``resume``: continue
    that stopped run instead (``trader paper --feed kite --resume RUN``)."""
    from app.runners.live import kite_source
    from app.runners.paper import trading_session

    settings = settings or load_settings("paper", interval="1minute")
    now = [datetime.combine(first_day, datetime.min.time(), IST).timestamp()]
    async with FakeKite(heartbeat_s=0.2) as fake:
        fake.add_instrument(INFY, "INFY")
        source = await kite_source(
            settings, fake.settings(), fake.credentials(), ["INFY"], flush_interval_s=None
        )
        session = trading_session(
            source, SmaCross(params), settings, engine, resume=resume, wall_clock=lambda: now[0]
        )
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        cum = 0
        for day in trading_days(first_day, sessions):
            open_ = datetime.combine(day, datetime.min.time(), IST) + timedelta(hours=9, minutes=15)
            for k, price in enumerate(prices):
                at = open_ + timedelta(minutes=k, seconds=10)
                now[0] = (at + timedelta(days=clock_lag_days, seconds=10)).timestamp()
                cum += 1000
                await fake.ticker.push([tick(at, float(price), cum)])
                if k:  # tick k closes bar k-1: wait for it before the next tick
                    closed = int((open_ + timedelta(minutes=k - 1)).timestamp()) * 10**9
                    await until(lambda closed=closed: session.status.last_bar_ts >= closed, 3.0)
        await until(lambda: not session.pipe.portfolio.holdings(), 3.0)
        session.request_stop()
        await asyncio.wait_for(task, 20)
    return session.status.run_id
