"""Live bars: Kite ticks → session-aligned bars → ``BarSlice``s, as an async stream.

The aggregation rules (exchange time, cumulative volume deltas, late and out-of-order ticks) are
``brokers.kite.bar_aggregator``'s; this module only adapts its per-slot batches to the engine's
slices and runs the ticker client, closing quiet slots by the wall clock once a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import numpy as np

from brokers.kite.bar_aggregator import BarAggregator, BarBatch
from brokers.kite.ticker_client import TickerClient
from brokers.kite.ticker_protocol import IST
from engine.events import BarSlice
from engine.sessions import local_day
from engine.universe import Universe


class BatchToSlice:
    """One aggregator batch → one ``BarSlice`` (symbols in sid order, session-open flags)."""

    def __init__(self, universe: Universe) -> None:
        self._universe = universe
        self._day: dict[str, int] = {}

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

    def __init__(
        self,
        client_factory: Callable[..., TickerClient],
        tokens: dict[int, str],
        interval_minutes: int,
        grace_s: float = 2.0,
        on_stale: Callable[[float], Any] | None = None,
        flush_interval_s: float | None = 1.0,
    ) -> None:
        self.interval_minutes = interval_minutes
        self.fingerprint = "kite-live"
        self.quality: dict[str, Any] = {"source": "kite ticker"}
        self._tokens = tokens
        self._aggregator = BarAggregator(interval_minutes, tokens, grace_s=grace_s)
        self._client_factory = client_factory
        self._on_stale = on_stale
        self._flush_interval_s = flush_interval_s  # None: bars close by tick time only
        self.client: TickerClient | None = None

    async def stream(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[BarSlice]:
        queue: asyncio.Queue[BarBatch] = asyncio.Queue()
        aggregator = self._aggregator
        to_slice = BatchToSlice(universe)

        def on_ticks(ticks: list[Any], received_at: datetime) -> None:
            for tick in ticks:
                for batch in aggregator.on_tick(tick, received_at):
                    queue.put_nowait(batch)

        client = self._client_factory(on_ticks=on_ticks, on_stale=self._on_stale)
        self.client = client
        await client.subscribe(list(self._tokens), "full")
        reader = asyncio.create_task(client.run())

        async def clock(every: float) -> None:
            while True:
                await asyncio.sleep(every)
                for batch in aggregator.flush(datetime.now(IST)):
                    queue.put_nowait(batch)

        every = self._flush_interval_s
        ticker = asyncio.create_task(clock(every) if every else stop.wait())
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, stopper, reader}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if reader in done:
                        reader.result()  # a fatal feed error (token expired) surfaces here
                    break
                yield to_slice(getter.result(), next_seq())
        finally:
            for task in (ticker, stopper):
                task.cancel()
            await client.stop()
            reader.cancel()
