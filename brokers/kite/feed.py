"""Live bars: Kite ticks → session-aligned bars → ``BarSlice``s, as an async stream.

The aggregation rules (exchange time, cumulative volume deltas, late and out-of-order ticks) are
``brokers.kite.bar_aggregator``'s; this module only adapts its per-slot batches to the engine's
slices and runs the ticker client, closing quiet slots by the wall clock once a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import structlog

from brokers.kite.bar_aggregator import BarAggregator, BarBatch
from brokers.kite.ticker_client import TickerClient
from config.calendar import NseCalendar
from config.sessions import IST, SessionTimes, local_day
from config.settings import DEFAULT_MAX_BAR_MOVE_PCT
from engine.events import BarSlice
from engine.universe import Universe

log = structlog.get_logger()
SESSION_LEAD = timedelta(minutes=1)  # connect before the open: the first ticks are the auction's
SESSION_TAIL = timedelta(minutes=1)  # and stay past the close for late ticks of the last bar


class BatchToSlice:
    """One aggregator batch → one ``BarSlice`` (symbols in sid order, session-open flags)."""

    def __init__(self, universe: Universe, last_days: dict[str, int] | None = None) -> None:
        self._universe = universe
        self._day: dict[str, int] = dict(last_days or {})

    def __call__(self, batch: BarBatch, seq: int) -> BarSlice:
        uni = self._universe
        symbols = sorted(batch.bars, key=uni.add)
        day = local_day(batch.ts_ns)
        rows = np.array([batch.bars[s] for s in symbols], dtype=np.float64).reshape(-1, 5)
        first = np.array([self._day.get(s) != day for s in symbols], dtype=bool)
        for s in symbols:
            self._day[s] = day
        return BarSlice(
            batch.ts_ns, seq, batch.interval_ns, np.array([uni.sid(s) for s in symbols]),
            tuple(symbols), rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(),
            rows[:, 3].copy(), rows[:, 4].copy(), first,
        )  # fmt: skip


class KiteLiveSource:
    """Streams slices from Kite's ticker for ``tokens`` (instrument token → symbol)."""

    finite = False
    paced = True

    def __init__(
        self,
        client_factory: Callable[..., TickerClient],
        tokens: dict[int, str],
        interval_minutes: int,
        grace_s: float = 2.0,
        flush_interval_s: float | None = 1.0,
        calendar: NseCalendar | None = None,
        *,
        session: SessionTimes,
        max_tick_move_pct: float | None = DEFAULT_MAX_BAR_MOVE_PCT,
        now: Callable[[], datetime] = lambda: datetime.now(IST),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval_minutes = interval_minutes
        self.fingerprint = "kite-live"
        self.quality: dict[str, Any] = {"source": "kite ticker"}
        self._tokens = tokens
        self._aggregator = BarAggregator(
            interval_minutes, tokens, grace_s=grace_s, session=session,
            max_move_pct=max_tick_move_pct,
        )  # fmt: skip
        self._client_factory = client_factory
        #: set by the session (the risk monitor's ``feed_stale``): told when the ticker's
        #: watchdog finds the websocket silent, before it reconnects
        self.on_stale: Callable[[int, float], Awaitable[None]] | None = None
        #: set by the session (the risk monitor's ``feed_fresh``): ticks flow again
        self.on_fresh: Callable[[int], Awaitable[None]] | None = None
        #: awaited before each session's websocket connects (the live runner checks the day's
        #: access token here: an expired one halts and alerts before the open, not at it)
        self.before_session: Callable[[], Awaitable[object]] | None = None
        #: called when a session's last bars have been handed out (the day's summary)
        self.after_session: Callable[[], object] | None = None
        self._flush_interval_s = flush_interval_s  # None: bars close by tick time only
        self._calendar = calendar  # None: stream whenever started (tests, ad-hoc sessions)
        self._now = now
        self._sleep = sleep
        self.client: TickerClient | None = None
        self._last_days: dict[str, int] = {}

    def continue_after(self, last_bar_ns: dict[str, int]) -> None:
        """Bars before the feed (warm-up history, today's included) ended at these times per
        symbol: a live bar of the same day is then not a session's first bar, exactly as in a
        session that ran since the open (session-scoped features do not restart mid-day)."""
        self._last_days = {symbol: local_day(ts) for symbol, ts in last_bar_ns.items()}

    async def batches(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[tuple[BarSlice]]:
        """The session's ``BarSource`` interface: one slice per batch, as each bar closes."""
        async for bars in self.stream(universe, next_seq, stop):
            yield (bars,)

    async def stream(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[BarSlice]:
        """Session after session: idle until a minute before the next open (weekends and
        holidays skipped), stream until the close, close the day's last bars, repeat."""
        to_slice = BatchToSlice(universe, self._last_days)
        while not stop.is_set():
            until: datetime | None = None
            if self._calendar is not None:
                start, end = self._calendar.current_or_next(self._now())
                wait = (start - SESSION_LEAD - self._now()).total_seconds()
                if wait > 0:
                    log.info("feed.idle", next_open=start.isoformat(), seconds=round(wait))
                    if await self._wait(stop, wait):
                        return
                until = end + SESSION_TAIL
            if self.before_session is not None:
                await self.before_session()
            async for bars in self._session(to_slice, next_seq, stop, until):
                yield bars
            if self.after_session is not None and not stop.is_set():
                self.after_session()
            if self._calendar is None:
                return

    async def _stale(self, silent_s: float) -> None:
        if self.on_stale is not None:
            await self.on_stale(time.time_ns(), silent_s)

    async def _fresh(self) -> None:
        if self.on_fresh is not None:
            await self.on_fresh(time.time_ns())

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if stopped."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()
        return stop.is_set()

    async def _session(
        self, to_slice: BatchToSlice, next_seq: Callable[[], int], stop: asyncio.Event,
        until: datetime | None,
    ) -> AsyncIterator[BarSlice]:  # fmt: skip
        queue: asyncio.Queue[BarBatch] = asyncio.Queue()
        aggregator = self._aggregator

        def on_ticks(ticks: list[Any], received_at: datetime) -> None:
            for tick in ticks:
                for batch in aggregator.on_tick(tick, received_at):
                    queue.put_nowait(batch)

        client = self._client_factory(on_ticks=on_ticks, on_stale=self._stale, on_fresh=self._fresh)
        self.client = client
        await client.subscribe(list(self._tokens), "full")
        reader = asyncio.create_task(client.run())

        closed = asyncio.Event()

        async def clock(every: float) -> None:
            while True:
                await asyncio.sleep(every)
                now = self._now()
                for batch in aggregator.flush(now):
                    queue.put_nowait(batch)
                if until is not None and now >= until:
                    for batch in aggregator.close():  # the day's last bars
                        queue.put_nowait(batch)
                    closed.set()
                    return

        every = self._flush_interval_s
        ticker = asyncio.create_task(clock(every) if every else stop.wait())
        stopper = asyncio.create_task(stop.wait())
        ender = asyncio.create_task(closed.wait())
        try:
            while not stop.is_set():
                if closed.is_set() and queue.empty():
                    break  # session over and every bar handed out
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, stopper, reader, ender}, return_when=asyncio.FIRST_COMPLETED
                )
                if ender in done and getter not in done:
                    getter.cancel()
                    continue
                if getter not in done:
                    getter.cancel()
                    if reader in done:
                        reader.result()  # a fatal feed error (token expired) surfaces here
                    break
                yield to_slice(getter.result(), next_seq())
        finally:
            for task in (ticker, stopper, ender):
                task.cancel()
            await client.stop()
            reader.cancel()
