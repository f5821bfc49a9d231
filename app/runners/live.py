"""Live trading: the one session with Kite's ticker as the feed and ``KiteBroker`` as the
broker. Reaching it needs a recorded promotion (``risk.promotion.check_live_allowed``), which
the CLI checks before anything connects.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from app.runners.paper import trading_session
from brokers.costs import make_cost_model
from brokers.kite.auth import KiteCredentials, read_secrets_file, stored_access_token
from brokers.kite.broker import KiteBroker
from brokers.kite.feed import KiteLiveSource
from brokers.kite.history import HistoryDownloader, resolve_tokens
from brokers.kite.rest import KiteRestClient
from brokers.kite.settings import KiteSettings
from brokers.kite.ticker_client import TickerClient
from brokers.kite.token_watch import AccessTokenWatch
from config.calendar import NseCalendar
from config.sessions import IST, SessionTimes, parse_interval
from config.settings import DataSettings, EngineSettings
from engine.bus import EventBus
from engine.data.loader import LoadedBars, load_bars
from engine.ports import Alerts, Strategy
from engine.session import TradingSession
from engine.store.lease import DEFAULT_LEASE_TIMEOUT_S
from engine.store.retry import DEFAULT_STORE_WAIT_S
from notify.telegram import TelegramAlerts, TelegramSettings


async def instrument_tokens(
    kite: KiteSettings, credentials: KiteCredentials, symbols: list[str], exchange: str = "NSE"
) -> dict[int, str]:
    async with KiteRestClient(kite, credentials) as rest:
        instruments = await rest.instruments(exchange)
    return {
        token: symbol for symbol, token in resolve_tokens(instruments, symbols, exchange).items()
    }


async def history_for_warmup(
    kite: KiteSettings,
    credentials: KiteCredentials,
    symbols: list[str],
    interval: str,
    days: int,
    cache_dir: Path,
    today: date,
    *,
    session: SessionTimes,
    data: DataSettings | None = None,
    now: datetime | None = None,
) -> LoadedBars | None:
    """The last ``days`` calendar days before ``today`` of ``symbols`` from Kite's historical
    API, and today's bars that have closed by ``now`` — loaded like any bar file — or None for
    days=0. Downloads are resumable and cached in ``cache_dir``; today's part is fetched again
    on every start (the downloader never treats a chunk reaching today as final).

    A live feed starts with cold indicators; replaying these bars through the decision
    handlers first means the first live bar is decided like the thousandth. Stitching today's
    bars in is what makes a restart at 11:00 decide its first bar on the same window as a
    session that ran since the open; a bar still forming at ``now`` is left out (Kite serves
    it, incomplete) — the live feed builds it from ticks. ``now`` defaults to the wall clock."""
    if days <= 0:
        return None
    now = now or datetime.now(IST)
    async with KiteRestClient(kite, credentials) as rest:
        results = await HistoryDownloader(rest, cache_dir, today=lambda: now.date()).download(
            symbols, today - timedelta(days=days), today,
            KITE_INTERVALS.get(parse_interval(interval), "minute"),
        )  # fmt: skip
    paths = [r.path for r in results if r.rows]
    if not paths:
        return None
    loaded = load_bars(paths, interval, session=session, data=data)
    closed = loaded.frame["ts"] + pd.Timedelta(minutes=loaded.interval_minutes) <= now
    if closed.all():
        return loaded
    frame = loaded.frame[closed].reset_index(drop=True)
    return dataclasses.replace(loaded, frame=frame) if len(frame) else None


#: Kite's names for the intervals it serves; others are resampled from minute candles
KITE_INTERVALS = {
    1: "minute",
    3: "3minute",
    5: "5minute",
    10: "10minute",
    15: "15minute",
    30: "30minute",
    60: "60minute",
}


async def kite_source(
    settings: EngineSettings,
    kite: KiteSettings,
    credentials: KiteCredentials,
    symbols: list[str],
    *,
    calendar: NseCalendar | None = None,
    flush_interval_s: float | None = 1.0,
    token_watch: AccessTokenWatch | None = None,
    warmup: LoadedBars | None = None,
) -> KiteLiveSource:
    """Kite ticks → bars for ``symbols`` (the paper daemon on live prices, and live mode).
    ``kite.feed_silence_s`` of websocket silence (Kite heartbeats every second), or
    ``kite.feed_tick_silence_s`` without a tick, is a stale feed: the session's risk monitor
    stops new entries until ticks flow again, and the ticker reconnects with backoff.
    ``warmup``: the history the session replays first; live bars continue its days."""
    tokens = await instrument_tokens(kite, credentials, symbols)
    source = KiteLiveSource(
        lambda **callbacks: TickerClient(
            kite,
            credentials,
            stale_after_s=kite.feed_silence_s,
            tick_silence_s=kite.feed_tick_silence_s,
            backoff_base_s=kite.backoff_base_s,
            backoff_max_s=kite.backoff_max_s,
            token_watch=token_watch,
            **callbacks,
        ),
        tokens,
        parse_interval(settings.interval),
        flush_interval_s=flush_interval_s,
        calendar=calendar,
        session=settings.session.times,
        max_tick_move_pct=settings.data.max_bar_move_pct,
    )
    if warmup is not None and len(warmup.frame):
        last = warmup.frame.groupby("symbol")["ts"].max()
        source.continue_after({str(s): int(ts.value) for s, ts in last.items()})
    return source


async def live_session(
    settings: EngineSettings,
    strategy: Strategy,
    db: Engine,
    kite: KiteSettings,
    credentials: KiteCredentials,
    symbols: list[str],
    *,
    resume: str | None = None,
    broker_options: dict[str, Any] | None = None,
    flush_interval_s: float | None = 1.0,
    calendar: NseCalendar | None = None,
    warmup: LoadedBars | None = None,
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
    store_wait_s: float = DEFAULT_STORE_WAIT_S,
    token_poll_s: float = 5.0,
    alerts: Alerts | None = None,
) -> TradingSession:
    """Live: Kite's feed and ``KiteBroker``; the caller has checked the promotion. The lease
    and store options are ``trading_session``'s.

    The feed's websocket and the broker share one ``AccessTokenWatch``: the daily token's
    expiry, met by either, halts new entries and alerts (``BrokerEvent("token_expired")``);
    the token ``trader kite login`` then writes is read from the secrets file every
    ``token_poll_s`` and picked up by both without a restart. ``alerts``: where the
    operator hears about the session (``telegram_alerts``)."""
    watch = AccessTokenWatch(
        credentials, lambda: stored_access_token(kite, credentials), poll_s=token_poll_s
    )
    source = await kite_source(
        settings, kite, credentials, symbols, calendar=calendar,
        flush_interval_s=flush_interval_s, token_watch=watch, warmup=warmup,
    )  # fmt: skip

    def broker(bus: EventBus, run_id: str) -> KiteBroker:
        # the run id namespaces order tags: "o1" of today's run is not "o1" of yesterday's
        made = KiteBroker(
            bus, kite, credentials, cost_model=make_cost_model(settings.costs),
            tag_namespace=run_id, token_watch=watch, **(broker_options or {}),
        )  # fmt: skip
        source.before_session = made.check_token
        return made

    session = trading_session(
        source, strategy, settings, db, resume=resume, broker_factory=broker, warmup=warmup,
        lease_timeout_s=lease_timeout_s, store_wait_s=store_wait_s,
    )  # fmt: skip
    if alerts is not None:
        session.attach_alerts(alerts)
    source.after_session = session.end_of_day  # the summary at the close, not next morning
    return session


def telegram_alerts(kite: KiteSettings) -> TelegramAlerts | None:
    """Telegram alerts if ``TELEGRAM_BOT_TOKEN`` and ``TELEGRAM_CHAT_ID`` are set (environment,
    or the private secrets file ``trader kite login`` uses); None (off) otherwise."""
    path = kite.secrets_path
    settings = TelegramSettings.from_env(secrets=read_secrets_file(path) if path.exists() else {})
    return TelegramAlerts(settings) if settings is not None else None
