"""A resume rebuilds its state at full speed and paces only the bars it has not processed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from app.runners.paper import trading_session
from config.sessions import NSE
from config.settings import load_settings
from engine.data.loader import load_bars
from engine.store.database import open_database
from strategies.sma_cross import SmaCross, SmaCrossParams

#: 15-minute bars at 900x: one new bar a second
SPEED = 900.0
DONE = 120  # bars processed before the stop: re-paced, two minutes before the first new bar


async def bars_after(session, count: int, timeout: float) -> float:
    """Seconds until the session has processed ``count`` bars in all."""
    started = time.monotonic()
    while session.status.bars_processed < count:
        assert time.monotonic() - started < timeout, (session.status.bars_processed, count)
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_resume_at_a_finite_speed_does_not_wait_through_processed_bars(
    tmp_path: Path, nifty_path: Path
) -> None:
    bars = load_bars([nifty_path], "15minute", end_date=None, session=NSE)
    settings = load_settings("paper", interval="15minute")
    engine = open_database(str(tmp_path / "pace.db"))

    def session(speed: float | None, resume: str | None = None):
        strategy = SmaCross(SmaCrossParams(3, 8, 5))
        return trading_session(bars, strategy, settings, engine, speed=speed, resume=resume)

    first = session(None)  # as fast as possible, stopped after DONE bars
    task = asyncio.create_task(first.run())
    await bars_after(first, DONE, 60)
    first.request_stop()
    await task
    run_id, done = first.status.run_id, first.status.bars_processed

    # where the stop landed depends on the machine's load: the new bars may straddle a night,
    # which a paced replay waits through too (17.75 h / 900), so expect what the bars' times say
    times = sorted(bars.frame["ts"].unique())
    expected = (times[done + 2] - times[done]).total_seconds() / SPEED

    resumed = session(SPEED, resume=run_id)
    task = asyncio.create_task(resumed.run())
    # the old code slept ~1 s per processed bar here: 2 minutes; a loaded box needs seconds
    to_first = await bars_after(resumed, done + 1, 30)
    between = await bars_after(resumed, done + 3, 30 + expected)  # and then it paces
    resumed.request_stop()
    await task
    assert to_first < 15
    assert between >= 0.75 * expected
