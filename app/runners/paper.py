"""Paper trading: the shared pipeline on a live-paced feed with a simulated broker, committing
every bar so that a killed daemon resumes exactly where it stopped.

The middle of the pipeline is the backtest's, object for object (``build_pipeline``); only the
pacing and the per-bar transaction differ. Run against a replay at ``--speed max`` it produces
the orders and fills of ``trader backtest`` on the same data — a test holds it to that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine

from app.runners.backtest import finalize_positions
from app.runners.restore import check_resumable, restore
from app.wiring import build_pipeline
from config.sessions import local_day
from config.settings import EngineSettings
from engine.bus import EventBus
from engine.data.loader import LoadedBars
from engine.data.replay import ReplayFeed
from engine.events import BarSlice, BrokerEvent, Fill, OrderUpdate
from engine.metrics import compute_metrics
from engine.pipeline import Pipeline, run_config
from engine.ports import Broker
from engine.store.recorder import RunRecorder
from engine.universe import Universe
from strategies.base import Strategy

log = structlog.get_logger()


@dataclass
class PaperStatus:
    """What the daemon's HTTP API reports (read by the dashboard and /metrics)."""

    run_id: str = ""
    mode: str = "paper"
    bars_processed: int = 0
    warmup_bars: int = 0
    last_bar_ts: int = 0
    feed_lag_s: float = 0.0
    decision_latency_s: list[float] = field(default_factory=list)
    finished: bool = False


async def paced(
    feed: ReplayFeed, next_seq: Callable[[], int], speed: float | None,
    stop: asyncio.Event,
) -> AsyncIterator[BarSlice]:  # fmt: skip
    """Release each slice when it would be known live (bar end), ``speed`` times faster than
    real time; ``None`` means as fast as possible (still yielding to the loop every bar)."""
    first_known: int | None = None
    wall0 = time.monotonic()
    for bars in feed.slices(next_seq):
        if stop.is_set():
            return
        if speed is not None:
            known = bars.ts_ns + bars.interval_ns
            first_known = known if first_known is None else first_known
            delay = wall0 + (known - first_known) / 1e9 / speed - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
        else:
            await asyncio.sleep(0)
        yield bars


class BarSource(Protocol):
    """Where a session's bars come from: a paced replay, or live ticks."""

    fingerprint: str
    interval_minutes: int
    quality: dict[str, Any]
    finite: bool  # a replay ends; a live feed runs until stopped

    def stream(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[BarSlice]: ...


class ReplaySource:
    """Stored bars replayed as if live: ``speed`` × real time, or as fast as possible."""

    finite = True

    def __init__(self, bars: LoadedBars, speed: float | None = None) -> None:
        self.bars = bars
        self.speed = speed
        self.fingerprint = bars.fingerprint
        self.interval_minutes = bars.interval_minutes
        self.quality = bars.quality.as_dict()

    async def stream(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[BarSlice]:
        async for bars in paced(ReplayFeed(self.bars, universe), next_seq, self.speed, stop):
            yield bars


class PaperSession:
    """A paper (simulated broker) or live (``broker`` given) trading session."""

    def __init__(
        self,
        source: BarSource | LoadedBars,
        strategy: Strategy,
        settings: EngineSettings,
        db: Engine,
        *,
        speed: float | None = None,
        resume: str | None = None,
        broker_factory: Callable[[EventBus, str], Broker] | None = None,
        warmup: LoadedBars | None = None,
    ) -> None:
        if isinstance(source, LoadedBars):
            source = ReplaySource(source, speed)
        self.source = source
        self.warmup = warmup  # history replayed through the decision handlers before the feed
        self.settings = settings
        self.speed = speed
        self.resume_id = resume
        self.recorder = RunRecorder(db, settings.mode, run_id=resume)
        bus = EventBus()
        broker = broker_factory(bus, self.recorder.run_id) if broker_factory else None
        self.pipe: Pipeline = build_pipeline(settings, strategy, bus=bus, broker=broker)
        self.status = PaperStatus(run_id=self.recorder.run_id, mode=settings.mode)
        self.stop = asyncio.Event()
        self._in_bar = False
        self._bar_lock = asyncio.Lock()

    async def run(self) -> PaperStatus:
        pipe, recorder, status = self.pipe, self.recorder, self.status
        config = run_config(self.settings, pipe.host.strategy)
        resume_after = 0
        if self.resume_id:
            run = check_resumable(
                recorder.engine, self.resume_id, self.settings.mode, config,
                self.source.fingerprint,
            )  # fmt: skip
            resume_after = await restore(pipe, recorder, run)
            status.bars_processed = int(run.bars_processed)
            log.info(
                "paper.resume",
                run_id=run.run_id,
                after_bar=resume_after,
                holdings=pipe.portfolio.holdings(),
                state=str(pipe.state.state),
            )
        else:
            recorder.start(pipe.host.strategy.name, config, self.source.fingerprint)
            log.info("paper.start", run_id=recorder.run_id, speed=self.speed or "max")
        recorder.attach(pipe.bus)
        for kind in (Fill, OrderUpdate, BrokerEvent):
            pipe.bus.subscribe(kind, self._between_bars)
        if self.warmup is not None:
            for bars in ReplayFeed(self.warmup, pipe.universe).slices(pipe.bus.next_seq):
                await pipe.warm(bars)  # indicators and model windows only; no orders
                status.warmup_bars += 1
            log.info("paper.warmed", bars=status.warmup_bars)
        # a real broker connects and reconciles after restored orders were handed to it, so it
        # recognises them at the account by their tags
        await pipe.broker.start()
        pipe.host.start()
        last: BarSlice | None = None
        day = -1
        try:
            async for bars in self.source.stream(pipe.universe, pipe.bus.next_seq, self.stop):
                if bars.ts_ns <= resume_after:
                    await pipe.warm(bars)  # rebuild indicator state; no orders
                    continue
                if local_day(bars.ts_ns) != day:
                    if day != -1:
                        self._end_of_day()
                    day = local_day(bars.ts_ns)
                async with self._bar_lock:  # controls wait for the bar's transaction
                    started = time.perf_counter()
                    self._in_bar = True
                    await pipe.bus.publish(bars)
                    self._in_bar = False
                    self._record_bar(bars, started)
                last = bars
            finished = self.source.finite and not self.stop.is_set()
            if finished and last is not None:
                await finalize_positions(pipe, last.ts_ns)
            self._finish("finished" if finished else "stopped")
            status.finished = finished
        except BaseException as exc:
            # a crash mid-bar leaves that bar uncommitted: a resume replays it
            log.error("paper.failed", error=str(exc))
            self._finish("failed", error=str(exc), raise_errors=False)
            raise
        finally:
            await pipe.broker.stop()
        return status

    def _record_bar(self, bars: BarSlice, started: float) -> None:
        status = self.status
        status.decision_latency_s.append(time.perf_counter() - started)
        del status.decision_latency_s[:-1000]
        status.bars_processed += 1
        status.last_bar_ts = bars.ts_ns
        status.feed_lag_s = max(0.0, time.time() - (bars.ts_ns + bars.interval_ns) / 1e9)
        self.recorder.commit_bar(self.pipe.portfolio, status.bars_processed, self.pipe.state)

    def _between_bars(self, _event: object) -> None:
        """A live broker reports fills whenever Kite does; store them at once, not with the
        next bar, so a crash in between cannot lose them."""
        if not self._in_bar:
            self._commit_now()

    def _end_of_day(self) -> None:
        pf = self.pipe.portfolio
        log.info(
            "paper.end_of_day",
            equity=round(pf.equity, 2),
            realized=round(pf.realized, 2),
            trades=len(pf.trades),
            holdings=pf.holdings(),
            state=str(self.pipe.state.state),
        )

    def _finish(self, status: str, error: str | None = None, raise_errors: bool = True) -> None:
        import numpy as np

        pf = self.pipe.portfolio
        metrics = compute_metrics(
            np.asarray(pf.curve_ts, dtype=np.int64), np.asarray(pf.curve_equity),
            np.asarray(pf.curve_gross), pf.trades, pf.initial_capital,
            self.source.interval_minutes, pf.turnover, pf.total_costs,
            session=self.settings.session.times,
        )  # fmt: skip
        try:
            self.recorder.finish(
                status=status, portfolio=pf, metrics=metrics,
                quality=self.source.quality, bars_processed=self.status.bars_processed,
                error=error,
            )  # fmt: skip
        except Exception:
            if raise_errors:
                raise
        log.info(
            "paper.stop", run_id=self.recorder.run_id, status=status, equity=round(pf.equity, 2)
        )

    def request_stop(self) -> None:
        self.stop.set()

    # ---- operator controls (the HTTP API calls these on the session's event loop) ------------
    def _now_ns(self) -> int:
        """Controls act at the last processed bar's time: orders they raise fill on the next bar,
        exactly as a strategy's would."""
        return self.status.last_bar_ts or self.pipe.portfolio.ts_ns

    async def kill_switch(self, who: str) -> None:
        """HALTED + cancel + flatten everything; only ``resume`` lifts it."""
        async with self._bar_lock:
            await self.pipe.monitor.kill_switch(self._now_ns(), who)
            self._commit_now()

    async def resume_trading(self, who: str) -> None:
        async with self._bar_lock:
            await self.pipe.state.resume(self._now_ns(), who, f"operator resume by {who}")
            self._commit_now()

    async def flatten(self, symbol: str, who: str) -> bool:
        """Close one symbol's position; False if nothing is held in it."""
        async with self._bar_lock:
            if symbol not in self.pipe.portfolio.holdings():
                return False
            reason = f"flatten {symbol} by {who}"
            await self.pipe.monitor.flatten(self._now_ns(), reason, only=symbol)
            self._commit_now()
            return True

    def _commit_now(self) -> None:
        self.recorder.commit_bar(self.pipe.portfolio, self.status.bars_processed, self.pipe.state)


def parse_speed(text: str) -> float | None:
    """'max' → None; '1x', '60x', '60' → 1.0, 60.0."""
    value = text.strip().lower()
    if value == "max":
        return None
    try:
        speed = float(value.removesuffix("x"))
    except ValueError:
        raise ValueError(f"--speed {text!r}: use max or a factor like 1x or 60x") from None
    if speed <= 0:
        raise ValueError(f"--speed {text!r} must be positive")
    return speed
