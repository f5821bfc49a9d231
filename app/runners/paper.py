"""Paper trading: the one session on a live-paced feed with a simulated broker, committing
every bar so that a killed daemon resumes exactly where it stopped.

The middle is the backtest's, object for object (``app.wiring.build_pipeline``); the model
strategy decides bar by bar through the online predictor, as it will live. Run against a
replay at ``--speed max`` it stores the orders, fills and trades of ``trader backtest`` on the
same data — tests hold it to that, for ``sma_cross`` and for the model strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from app.overlap import measure_run
from app.wiring import attach_predictor, build_pipeline
from config.settings import EngineSettings
from engine.bus import EventBus
from engine.data.loader import LoadedBars
from engine.data.replay import ReplaySource
from engine.ports import BarSource, Broker, Strategy
from engine.session import CommitPolicy, TradingSession
from engine.store.lease import DEFAULT_LEASE_TIMEOUT_S
from engine.store.recorder import RunRecorder
from engine.store.retry import DEFAULT_STORE_WAIT_S, RetryPolicy
from engine.store.schema import KITE_FEED, REPLAY_FEED


def trading_session(
    source: BarSource | LoadedBars,
    strategy: Strategy,
    settings: EngineSettings,
    db: Engine,
    *,
    speed: float | None = None,
    resume: str | None = None,
    broker_factory: Callable[[EventBus, str], Broker] | None = None,
    warmup: LoadedBars | None = None,
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
    store_wait_s: float = DEFAULT_STORE_WAIT_S,
    wall_clock: Callable[[], float] = time.time,
    launch: dict[str, Any] | None = None,
) -> TradingSession:
    """A daemon's session (paper, or live when ``broker_factory`` gives Kite's broker):
    per-bar commits, the online predictor, operator controls between bars. A model strategy's
    run records how much of its period the model saw: the replay's bars, or for a live feed
    everything from now on (``app/overlap.py``).

    ``lease_timeout_s``: after how long without a heartbeat another process may take the run
    over (a kill -9); ``store_wait_s``: how long a refused commit is retried, entries paused,
    before the session gives up; ``wall_clock``: epoch seconds, deciding which trading sessions
    the run traded (the run records its feed kind and those sessions: promotion evidence is
    forward trading on live prices, never a replay) — injectable for tests; ``launch``: how the
    run was started (stored with a new run, so that a resume needs only its id)."""
    if isinstance(source, LoadedBars):
        source = ReplaySource(source, speed, batch=1)
    recorder = RunRecorder(
        db, settings.mode, run_id=resume, lease_timeout_s=lease_timeout_s,
        retry=RetryPolicy(budget_s=store_wait_s),
    )  # fmt: skip
    recorder.launch = launch
    bus = EventBus()
    # the run id namespaces a real broker's order tags: "o1" of today's run is not yesterday's
    broker = broker_factory(bus, recorder.run_id) if broker_factory else None
    attach_predictor(strategy)
    replay = source.bars if isinstance(source, ReplaySource) else None
    recorder.feed_kind = feed_kind(source)
    recorder.wall_clock = wall_clock
    recorder.model_data = measure_run(strategy, replay, start_ns=int(wall_clock() * 1e9))
    pipeline = build_pipeline(settings, strategy, bus=bus, broker=broker)
    return TradingSession(
        source, pipeline, recorder, commit=CommitPolicy.PER_BAR, resume=resume, warmup=warmup
    )


def feed_kind(source: BarSource) -> str:
    """What a run records as its feed: ``kite`` for Kite's live prices, ``replay`` for stored
    bars at any pace (research, not paper evidence), else the source's class name."""
    from brokers.kite.feed import KiteLiveSource

    if isinstance(source, KiteLiveSource):
        return KITE_FEED
    if isinstance(source, ReplaySource):
        return REPLAY_FEED
    return type(source).__name__


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
