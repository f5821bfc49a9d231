"""A live restart in the middle of the day: warm-up stitches the history with today's bars up
to now, so the first live bar after a restart at 11:00 is decided on exactly the window a
session running since the open has — same bars, same values, same session-open flags."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from app.runners.live import history_for_warmup, kite_source
from brokers.kite.bar_aggregator import BarBatch
from brokers.kite.feed import BatchToSlice
from config.sessions import IST, NSE
from config.settings import load_settings
from engine.data.replay import ReplayFeed
from engine.events import BarSlice
from engine.universe import Universe
from tests.app.test_live_mode import INFY
from tests.support.fake_kite.server import FakeKite

TODAY = date(2024, 6, 5)
OPEN = datetime(2024, 6, 5, 9, 15, tzinfo=IST)
RESTART = datetime(2024, 6, 5, 11, 0, 20, tzinfo=IST)  # the 11:00 bar is forming
MINUTE_NS = 60 * 10**9


def seen(slices: list[BarSlice]) -> list[tuple]:
    """What the decision handlers read of each slice (all but the bus sequence number)."""
    return [
        (s.ts_ns, s.symbols, *(np.asarray(getattr(s, f)).tolist()
                               for f in ("open", "high", "low", "close", "volume", "session_open")))
        for s in slices
    ]  # fmt: skip


async def test_a_restart_at_11_decides_on_the_window_of_an_uninterrupted_session(tmp_path):
    settings = load_settings("live", interval="1minute")
    async with FakeKite() as fake:
        fake.add_instrument(INFY, "INFY")
        kite, credentials = fake.settings(), fake.credentials()

        async def warmup(now: datetime, cache: str):
            return await history_for_warmup(
                kite, credentials, ["INFY"], "1minute", 3, tmp_path / cache, TODAY,
                session=NSE, now=now,
            )  # fmt: skip

        before_open = await warmup(OPEN - timedelta(minutes=10), "a")  # the daemon's 09:05 start
        restarted = await warmup(RESTART, "b")
        source = await kite_source(
            settings, kite, credentials, ["INFY"], flush_interval_s=None, warmup=restarted
        )
        # the exchange's bars of today up to the 11:00 bar, as the live feed closes them
        rows = fake.candles.candles(INFY, "minute", datetime(2024, 6, 5, 9, 15),
                                    datetime(2024, 6, 5, 11, 0))  # fmt: skip
    assert before_open is not None and restarted is not None
    assert before_open.frame["ts"].max() == pd.Timestamp("2024-06-04 15:29", tz=IST)
    assert restarted.frame["ts"].max() == pd.Timestamp("2024-06-05 10:59", tz=IST)  # not 11:00
    today = [
        BarBatch(pd.Timestamp(ts).value, MINUTE_NS, {"INFY": (o, h, lo, c, float(v))})
        for ts, o, h, lo, c, v in rows
    ]
    assert len(today) == 106 and today[-1].ts == datetime(2024, 6, 5, 11, 0, tzinfo=IST)
    seq = itertools.count()

    # uninterrupted: history to yesterday, then every bar of today from the live feed
    universe = Universe()
    to_slice = BatchToSlice(universe)
    through = list(ReplayFeed(before_open, universe).slices(lambda: next(seq)))
    through += [to_slice(batch, next(seq)) for batch in today]
    # restarted at 11:00:20: history to 10:59 today, then the 11:00 bar from the live feed
    universe = Universe()
    to_slice = BatchToSlice(universe, source._last_days)
    again = list(ReplayFeed(restarted, universe).slices(lambda: next(seq)))
    again.append(to_slice(today[-1], next(seq)))

    assert len(again) == len(through) == 2 * 375 + 106  # Mon, Tue, today to 11:00 (Sun shut)
    assert seen(again) == seen(through)
    assert not again[-1].session_open[0]  # 11:00 is not the start of a session
