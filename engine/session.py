"""One trading session for every mode: backtest, paper and live all run this loop.

A session is a bar source, a clock, the shared pipeline (whose broker is simulated or Kite's) and
a commit policy — the parts DESIGN.md names, handed in by the app layer:

| mode | source | clock | broker | commit |
| --- | --- | --- | --- | --- |
| backtest | replay, as fast as possible | replay (bar time) | simulated | ``AT_END`` |
| paper | paced replay or Kite bars | wall | simulated | ``PER_BAR`` + fills |
| live | Kite bars | wall | Kite | ``PER_BAR`` + fills |

(``AT_END``: the whole run in one transaction; ``PER_BAR`` + fills: each bar, each fill that
arrives between bars, and each order before it goes to the broker, its own transaction.)

The middle — features, strategy, risk, execution, portfolio, metrics, the stored rows — is the
same objects in every mode, so a paper run on a replay at full speed stores exactly what the
backtest stores; tests hold it to that. The only per-bar difference is the commit policy: a
backtest delivers bars in a tight loop and writes once at the end, a daemon takes a lock per
bar (operator controls act between bars), times the decision and commits the bar's rows.

What keeps the database honest (``engine.store.lease``, ``engine.store.retry``):

- a stored session owns its run: it takes the run's lease before anything talks to a broker,
  renews it by a heartbeat, writes only while it holds it, and stops — writing nothing more —
  if another process took it over;
- a daemon's order is committed before the broker sees it, so no order exists at a broker
  without its row;
- a daemon whose database refuses a commit for a moment (a locked SQLite file, a PostgreSQL
  restart) waits with backoff instead of dying, with new entries paused (a stored RiskEvent) and
  the pause lifted once commits succeed again; bars wait meanwhile, so nothing is decided on
  state the database has not taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import structlog
from sqlalchemy.exc import DBAPIError

from config.sessions import local_day
from engine.alerting import AlertFeed
from engine.data.loader import LoadedBars
from engine.data.replay import ReplayFeed, ReplaySource
from engine.events import (
    BarSlice,
    BrokerEvent,
    Fill,
    Order,
    OrderStatus,
    OrderUpdate,
    TradingState,
)
from engine.metrics import compute_metrics
from engine.pipeline import Pipeline, run_config
from engine.ports import Alerts, BarSource
from engine.restore import check_resumable, restore
from engine.store.lease import LeaseLost
from engine.store.queries import trade_dict
from engine.store.recorder import RunRecorder
from engine.store.retry import StoreUnavailable, describe, is_transient, retry_sync

log = structlog.get_logger()

#: the gate named by the risk events of a pause for an unwritable database
STORE_GATE = "store"


class CommitPolicy(StrEnum):
    """When a session's rows reach the database."""

    AT_END = "at_end"  # backtest: the whole run in one transaction when it ends
    PER_BAR = "per_bar"  # paper/live: each bar (and each fill between bars) its own transaction


@dataclass
class SessionStatus:
    """What a running session reports (HTTP API, dashboard, /metrics)."""

    run_id: str = ""
    mode: str = "backtest"
    clock: str = "replay"  # replay: time is bar time; wall: bars arrive as they close
    bars_processed: int = 0
    symbol_bars: int = 0
    warmup_bars: int = 0
    last_bar_ts: int = 0
    feed_lag_s: float = 0.0  # wall clock only: seconds from a bar's end to its processing
    decision_latency_s: list[float] = field(default_factory=list)
    outcome: str = "created"  # created, running, finished, stopped, interrupted, failed
    finished: bool = False


@dataclass
class SessionResult:
    """A finished (or stopped) session: the same shape in every mode."""

    run_id: str | None
    mode: str
    outcome: str
    metrics: dict[str, float]
    trades: list[dict[str, Any]]
    bars_processed: int
    symbol_bars: int
    orders: int
    denials: int
    quality: dict[str, Any]
    data_fingerprint: str
    elapsed_s: float  # in the bar loop: from the first slice to the end-of-data settlement
    pipeline: Pipeline = field(repr=False)
    #: what the app layer adds about the run (e.g. the model's calls scored against labels)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.outcome,
            "metrics": {k: (None if not math.isfinite(v) else v) for k, v in self.metrics.items()},
            "trades": self.trades,
            "bars_processed": self.bars_processed,
            "symbol_bars": self.symbol_bars,
            "orders": self.orders,
            "risk_denials": self.denials,
            "data_quality": self.quality,
            "data_fingerprint": self.data_fingerprint,
            "elapsed_seconds": self.elapsed_s,
            **self.extra,
        }


class TradingSession:
    """Runs ``source``'s bars through ``pipeline`` and stores the run as ``commit`` says."""

    def __init__(
        self,
        source: BarSource,
        pipeline: Pipeline,
        recorder: RunRecorder | None,
        *,
        commit: CommitPolicy,
        resume: str | None = None,
        warmup: LoadedBars | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        if recorder is None and (commit is CommitPolicy.PER_BAR or resume):
            raise ValueError("a per-bar (paper/live) or resumed session needs a database")
        self.source = source
        self.pipe = pipeline
        self.settings = pipeline.settings
        self.mode = self.settings.mode
        self.recorder = recorder
        self.commit = commit
        self.resume_id = resume
        self.warmup = warmup  # history through the decision handlers first: warm indicators
        self._progress = progress
        self.status = SessionStatus(
            run_id=recorder.run_id if recorder else "",
            mode=self.mode,
            clock="replay" if source.finite else "wall",
        )
        source.on_stale = self._feed_stale
        source.on_fresh = self._feed_fresh
        self.stop = asyncio.Event()
        self._day = -1
        self._summarised = -1  # the last day whose summary went out
        self._loop_started: float | None = None
        self._in_bar = False
        self._bar_lock = asyncio.Lock()
        self._store_lock = asyncio.Lock()  # one commit (and its retries) at a time
        self._store_pause: str | None = None  # the reason of a pause this session set
        self._store_failure: StoreUnavailable | None = None  # the database stayed away
        self.alerts: AlertFeed | None = None
        self._day_equity: float | None = None  # for the daily summary
        self._day_trades = 0

    def attach_alerts(self, alerts: Alerts) -> AlertFeed:
        """Tell ``alerts`` (a phone) about this session: start/stop, fills, risk-state changes,
        broker trouble, and a summary at each day's end. Never on the trading path's clock."""
        self.alerts = AlertFeed(self.pipe.bus, alerts, label=self.mode)
        return self.alerts

    @property
    def stored(self) -> RunRecorder:
        """The run's recorder (a daemon's session always has one; a backtest may not)."""
        if self.recorder is None:
            raise RuntimeError("this session is not stored in a database")
        return self.recorder

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        pipe, status = self.pipe, self.status
        resume_after = await self._open()
        heartbeat = asyncio.create_task(self._heartbeat()) if self.recorder else None
        outcome, error = "failed", None
        try:
            if self.warmup is not None:
                for bars in ReplayFeed(self.warmup, pipe.universe).slices(pipe.bus.next_seq):
                    await pipe.warm(bars)  # indicators and model windows only; no orders
                    status.warmup_bars += 1
                log.info("session.warmed", mode=self.mode, bars=status.warmup_bars)
            # a real broker connects and reconciles after restored orders were handed to it,
            # so it recognises them at the account by their tags
            await pipe.broker.start()
            pipe.host.start()
            status.outcome = "running"
            if self.alerts is not None:
                self.alerts.session("started", self.mode, status.run_id)
            last_ts = await self._loop(resume_after)
            if self._store_failure is not None:  # met between bars (a live fill): the run fails
                raise self._store_failure
            finished = self.source.finite and not self.stop.is_set()
            if finished and last_ts is not None:
                pf = pipe.portfolio
                if await pipe.broker.end_of_data(last_ts, pf.holdings(), pf.last_price):
                    pf.curve_equity[-1] = pf.equity
            outcome = "finished" if finished else "stopped"
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            outcome, error = "interrupted", f"interrupted ({type(exc).__name__})"
            raise
        except BaseException as exc:
            # a crash mid-bar leaves the rest of that bar uncommitted: a resume replays the
            # bar, or — if an order of it was stored on its way to the broker — restores it
            cause = _store_cause(exc)
            error = str(cause or exc)
            log.error("session.failed", mode=self.mode, run_id=status.run_id, error=error)
            if cause is not None and cause is not exc:  # raised in a handler: say it plainly
                raise type(cause)(str(cause)) from exc
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if self.alerts is not None and status.bars_processed:
                self.end_of_day()
            if self.alerts is not None:
                self.alerts.session(outcome if error is None else f"{outcome}: {error}",
                                    self.mode, status.run_id)  # fmt: skip
            try:
                await pipe.broker.stop()
            finally:
                looped = self._loop_started
                elapsed = time.perf_counter() - looped if looped is not None else 0.0
                metrics = self._finish(outcome, error)
        if self.recorder is not None and self.recorder.lease.lost:
            raise LeaseLost(self.recorder.lease.lost_reason)  # the heartbeat found a new owner
        return SessionResult(
            status.run_id or None, self.mode, outcome, metrics, trade_dicts(pipe),
            status.bars_processed, status.symbol_bars, pipe.execution.orders,
            pipe.execution.denied, self.source.quality, self.source.fingerprint, elapsed,
            pipe,
        )  # fmt: skip

    async def _loop(self, resume_after: int) -> int | None:
        """Every batch of slices through the pipeline; returns the last bar's timestamp."""
        pipe, status = self.pipe, self.status
        bus = pipe.bus
        deliver = bus.deliver
        per_bar = self.commit is CommitPolicy.PER_BAR
        last_ts: int | None = None
        async for batch in self.source.batches(pipe.universe, bus.next_seq, self.stop):
            if self._loop_started is None:  # after the source's own set-up (e.g. the pivot)
                self._loop_started = time.perf_counter()
            bars: BarSlice | None = None
            count = symbol_bars = 0
            if per_bar:
                for bars in batch:
                    if bars.ts_ns <= resume_after:
                        await pipe.warm(bars)  # processed before the restart: state only
                        continue
                    await self._guarded_bar(bars)
            else:  # the backtest's hot path: nothing per bar but the delivery
                for bars in batch:
                    pending = deliver(bars)
                    if pending is not None:
                        await pending
                    count += 1
                    symbol_bars += len(bars.symbols)
                status.bars_processed += count
                status.symbol_bars += symbol_bars
                if self._progress is not None:
                    self._progress(count)
            if bars is not None:
                last_ts = bars.ts_ns
        return last_ts

    async def _guarded_bar(self, bars: BarSlice) -> None:
        """A daemon's bar: operator controls wait for it; its rows are one transaction."""
        status = self.status
        day = local_day(bars.ts_ns)
        if day != self._day:
            self.end_of_day()
            self._day = day
            pf = self.pipe.portfolio
            self._day_equity, self._day_trades = pf.equity, len(pf.trades)
        async with self._bar_lock:
            started = time.perf_counter()
            self._in_bar = True
            try:
                await self.pipe.bus.publish(bars)
            finally:
                self._in_bar = False
            status.decision_latency_s.append(time.perf_counter() - started)
            del status.decision_latency_s[:-1000]
            status.bars_processed += 1
            status.symbol_bars += len(bars.symbols)
            status.last_bar_ts = bars.ts_ns
            if status.clock == "wall":
                status.feed_lag_s = max(0.0, time.time() - (bars.ts_ns + bars.interval_ns) / 1e9)
            await self._store()

    # ---- start, resume, finish -----------------------------------------------------------------
    async def _open(self) -> int:
        """Start a new run, or restore a stopped one; returns the last bar already processed."""
        pipe, recorder, status = self.pipe, self.recorder, self.status
        resume_after = 0
        if recorder is not None:
            config = run_config(self.settings, pipe.host.strategy)
            if self.resume_id:
                resume_after = await self._resume(recorder, config)
            else:
                recorder.start(pipe.host.strategy.name, config, self.source.fingerprint)
            recorder.attach(pipe.bus)
            if self.commit is CommitPolicy.PER_BAR:
                for kind in (Fill, OrderUpdate, BrokerEvent):
                    pipe.bus.subscribe(kind, self._between_bars)
                # after the recorder has the order: execution submits once this returns
                pipe.bus.subscribe(Order, self._before_broker)
        if not self.resume_id:
            log.info(
                "session.start", mode=self.mode, run_id=status.run_id,
                strategy=pipe.host.strategy.name, source=self.source.fingerprint,
                clock=status.clock, commit=str(self.commit),
            )  # fmt: skip
        return resume_after

    async def _resume(self, recorder: RunRecorder, config: dict[str, object]) -> int:
        """Take the run over from the database: its lease first (refused, untouched, while
        another process holds it), then its state; returns the last bar already processed."""
        pipe, fingerprint = self.pipe, self.source.fingerprint
        check_resumable(recorder.engine, self.resume_id or "", self.mode, config, fingerprint)
        recorder.lease.acquire()  # before the restore hands any order to the broker
        try:
            # read again under the lease: nobody else writes the run from here on
            run = check_resumable(recorder.engine, recorder.run_id, self.mode, config, fingerprint)
            resume_after = await restore(pipe, recorder, run)
            recorder.resumed()
        except BaseException:
            with contextlib.suppress(Exception):
                recorder.lease.release()
            raise
        self.status.bars_processed = int(run.bars_processed)
        if isinstance(self.source, ReplaySource):
            self.source.unpaced_through(resume_after)  # re-pace nothing already processed
        log.info(
            "session.resume", mode=self.mode, run_id=run.run_id, after_bar=resume_after,
            holdings=pipe.portfolio.holdings(), state=str(pipe.state.state),
        )  # fmt: skip
        return resume_after

    async def _heartbeat(self) -> None:
        """Renew the run's lease while the session runs, also when no bar comes (nights,
        weekends); if another process owns the run now, stop at once: the next write would be
        refused anyway, and a second owner must not trade."""
        lease = self.stored.lease
        while True:
            await asyncio.sleep(lease.heartbeat_interval_s)
            try:
                lease.heartbeat()
            except LeaseLost as exc:
                log.error("session.lease_lost", mode=self.mode, run_id=lease.run_id, error=str(exc))
                self.stop.set()
                return
            except Exception as exc:  # the lease holds for its timeout: try again next beat
                log.warning("session.heartbeat_failed", mode=self.mode, error=describe(exc))

    def _finish(self, outcome: str, error: str | None) -> dict[str, float]:
        """Metrics, once, from the portfolio's curve; the run's final row and status."""
        pf, status = self.pipe.portfolio, self.status
        metrics = compute_metrics(
            np.asarray(pf.curve_ts, dtype=np.int64), np.asarray(pf.curve_equity),
            np.asarray(pf.curve_gross), pf.trades, pf.initial_capital,
            self.source.interval_minutes, pf.turnover, pf.total_costs,
            session=self.settings.session.times, total_slippage=pf.total_slippage,
        )  # fmt: skip
        status.outcome = outcome
        status.finished = outcome == "finished"
        recorder = self.recorder
        if recorder is not None and not recorder.lease.lost:  # a new owner writes the run now

            def write() -> None:
                recorder.finish(
                    status=outcome, portfolio=pf, metrics=metrics, quality=self.source.quality,
                    bars_processed=status.bars_processed, error=error,
                )  # fmt: skip

            try:
                if outcome in ("finished", "stopped"):  # worth waiting for the database
                    retry_sync(write, recorder.lease.retry, f"storing run {recorder.run_id}")
                else:
                    write()
            except Exception as exc:
                if outcome in ("finished", "stopped"):
                    raise
                log.error("session.store_failed", mode=self.mode, error=str(exc))
        if status.clock == "wall" or outcome != "finished":
            log.info(
                "session.stop", mode=self.mode, run_id=status.run_id, status=outcome,
                equity=round(pf.equity, 2),
            )  # fmt: skip
        return metrics

    async def _feed_stale(self, ts_ns: int, silent_s: float) -> None:
        """A live feed went quiet: the risk monitor decides (no new entries), between bars."""
        async with self._bar_lock:
            await self.pipe.monitor.feed_stale(ts_ns, silent_s)
            await self._store()

    async def _feed_fresh(self, ts_ns: int) -> None:
        """Ticks flow again after a stale spell: the monitor lifts the stale-data limit (only
        its own), between bars."""
        async with self._bar_lock:
            if await self.pipe.monitor.feed_fresh(ts_ns):
                await self._store()

    def _between_bars(self, _event: object) -> Awaitable[None] | None:
        """A live broker reports fills whenever Kite does; store them at once, not with the
        next bar, so a crash in between cannot lose them."""
        return None if self._in_bar else self._store()

    async def _before_broker(self, order: Order) -> None:
        """An approved order is committed before execution hands it to the broker: no order
        reaches a broker whose row is not in the database (a crash after this replays nothing
        of the bar: the order is restored and handed to the broker again, by its id). If the
        database stays unwritable, the order is never sent, and its row — should the failed
        run's last write get through — says so."""
        try:
            await self._store()
        except StoreUnavailable:
            self.stored.on_order_update(
                OrderUpdate(order.ts_ns, order.seq, order.order_id, order.symbol,
                            OrderStatus.REJECTED, 0, "not sent: the database refused its row")
            )  # fmt: skip
            raise

    def end_of_day(self) -> None:
        """The day's close: the summary (logged, and sent to the alerts) — once per day,
        whether the feed says the session is over, the next day's first bar arrives, or the
        session stops."""
        if self._day != -1 and self._summarised != self._day:
            self._summarised = self._day
            self._end_of_day()

    def _end_of_day(self) -> None:
        pf = self.pipe.portfolio
        log.info(
            "session.end_of_day", mode=self.mode, equity=round(pf.equity, 2),
            realized=round(pf.realized, 2), trades=len(pf.trades), holdings=pf.holdings(),
            state=str(self.pipe.state.state),
        )  # fmt: skip
        if self.alerts is not None:
            start = pf.equity if self._day_equity is None else self._day_equity
            peak = self.pipe.monitor.peak
            self.alerts.daily_summary(
                (date(1970, 1, 1) + timedelta(days=self._day)).isoformat(),
                pf.equity - start, len(pf.trades) - self._day_trades,
                100 * (1 - pf.equity / peak) if peak > 0 else 0.0, str(self.pipe.state.state),
            )  # fmt: skip

    async def _store(self) -> None:
        """Commit what the session has buffered (``PER_BAR``), as of the bar in hand.

        A transient failure (``engine.store.retry.is_transient``) is retried with backoff for
        the recorder's retry budget — then ``StoreUnavailable`` fails the session. Meanwhile
        new entries are paused (REDUCING, a risk event with the database's error) and the bar
        loop waits; once a commit succeeds the pause this set is lifted (and that stored too).
        A stop request does not cut the wait short: what is buffered may be a live fill."""
        recorder = self.recorder
        if recorder is None or self.commit is not CommitPolicy.PER_BAR:
            return
        if not recorder.lease.held and not recorder.lease.lost:
            return  # the run is not stored yet (its first write takes this along) or is done
        async with self._store_lock:
            delays: Iterator[float] | None = None
            while True:
                # mid-bar (an order on its way to the broker) the bar in hand counts as
                # processed: a restart must not decide it again next to the stored order
                done = self.status.bars_processed + (1 if self._in_bar else 0)
                try:
                    recorder.commit_bar(self.pipe.portfolio, done, self.pipe.state)
                except DBAPIError as exc:
                    if not is_transient(exc):
                        raise
                    if delays is None:
                        delays = recorder.lease.retry.delays()
                        await self._pause_entries(describe(exc))
                    delay = next(delays, None)
                    if delay is None:  # give up, wherever this was called from: stop the run
                        self._store_failure = StoreUnavailable(
                            f"run {recorder.run_id}: the database refused writes for "
                            f"{recorder.lease.retry.budget_s:g}s ({describe(exc)})"
                        )
                        self.stop.set()
                        raise self._store_failure from exc
                    log.warning(
                        "session.store_retry", mode=self.mode, error=describe(exc),
                        wait_s=round(delay, 3),
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    continue
                if self._store_pause is None:
                    return
                await self._lift_pause()  # and one more pass stores the lift

    async def _pause_entries(self, error: str) -> None:
        reason = f"database not writable ({error}): no new entries until it is"
        ts = self.pipe.portfolio.ts_ns or self.status.last_bar_ts
        log.warning("session.store_paused", mode=self.mode, error=error)
        if await self.pipe.state.tighten(TradingState.REDUCING, ts, STORE_GATE, reason):
            self._store_pause = reason

    async def _lift_pause(self) -> None:
        """Back to ACTIVE — unless something else tightened the state meanwhile."""
        reason, self._store_pause = self._store_pause, None
        state = self.pipe.state
        log.info("session.store_resumed", mode=self.mode)
        if state.state is TradingState.REDUCING and state.reason == reason:
            ts = self.pipe.portfolio.ts_ns or self.status.last_bar_ts
            await state.resume(ts, STORE_GATE, "database writable again")

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
            await self._store()

    async def resume_trading(self, who: str) -> None:
        async with self._bar_lock:
            await self.pipe.state.resume(self._now_ns(), who, f"operator resume by {who}")
            await self._store()

    async def flatten(self, symbol: str, who: str) -> bool:
        """Close one symbol's position; False if nothing is held in it."""
        async with self._bar_lock:
            if symbol not in self.pipe.portfolio.holdings():
                return False
            reason = f"flatten {symbol} by {who}"
            await self.pipe.monitor.flatten(self._now_ns(), reason, only=symbol)
            await self._store()
            return True


def _store_cause(exc: BaseException) -> BaseException | None:
    """The lost lease or unwritable database behind ``exc`` (often wrapped in a bus
    ``HandlerError`` when it struck while an order was being stored), if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LeaseLost | StoreUnavailable):
            return seen
        seen = seen.__cause__
    return None


def trade_dicts(pipe: Pipeline) -> list[dict[str, Any]]:
    return [
        trade_dict(t.symbol, t.side, t.qty, t.entry_ts_ns, t.entry_price, t.exit_ts_ns,
                   t.exit_price, t.pnl, t.costs, t.exit_reason)
        for t in pipe.portfolio.trades
    ]  # fmt: skip
