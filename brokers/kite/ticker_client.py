"""asyncio client for Kite's ticker websocket: stays connected and keeps its subscriptions.

The official ``KiteTicker`` runs twisted in a thread; the engine is one asyncio loop, so this
client is aiohttp. What it guarantees:

* subscriptions are desired state: ``subscribe``/``set_mode``/``unsubscribe`` update it and, when
  connected, send it; every (re)connection replays it (subscribe, then mode, per mode group);
* a dropped connection is retried with exponential backoff (with jitter, capped), reset after a
  successful handshake; a 403 handshake means the access token is dead, which retrying cannot
  fix, so ``run`` raises ``KiteTokenError`` instead of looping — or, given the process's
  ``AccessTokenWatch``, reports the dead token to it and waits, without connecting, until a
  new token is picked up (``trader kite login``), then reconnects and resubscribes;
* stale feed: Kite sends a heartbeat byte about every second even when nothing trades, so
  ``stale_after_s`` of total silence means the connection is dead even if TCP has not noticed;
  and a connection that keeps beating but delivers no tick for ``tick_silence_s`` while
  instruments are subscribed has lost its subscription server-side (during market hours a
  universe does not go a minute without a trade). Either way ``on_stale`` is told and the
  connection is recycled (reconnect, resubscribe). A connection that went stale does not reset
  the reconnect backoff — a feed that keeps going quiet is retried ever more slowly, not in a
  tight loop — and the first tick after a stale spell is announced with ``on_fresh``;
* malformed messages are counted and reported through ``on_error``, never fatal.

Credentials travel in the websocket URL, so the URL is never logged and error texts are scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from brokers.kite.auth import KiteCredentials
from brokers.kite.errors import KiteTokenError
from brokers.kite.settings import KiteSettings
from brokers.kite.ticker_protocol import (
    MODE_QUOTE,
    MODES,
    TickerProtocolError,
    decode_message,
    decode_text_message,
    mode_message,
    subscribe_message,
    unsubscribe_message,
)
from brokers.kite.token_watch import AccessTokenWatch
from config.redact import scrub
from config.sessions import IST

log = logging.getLogger(__name__)

Callback = Callable[..., Awaitable[None] | None]


async def _call(callback: Callback | None, *args: Any) -> None:
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


@dataclass
class TickerStats:
    connects: int = 0
    messages: int = 0
    heartbeats: int = 0
    ticks: int = 0
    protocol_errors: int = 0
    stale_events: int = 0


class TickerClient:
    """Callbacks may be plain or async functions:

    * ``on_ticks(ticks, received_at)`` — decoded ticks of one message, arrival time (IST);
    * ``on_order_update(order)`` — the order dict of a Kite order-update text message;
    * ``on_error(text)`` — Kite error messages and undecodable frames;
    * ``on_stale(silent_s)`` — the feed went silent; a reconnect follows;
    * ``on_fresh()`` — the first ticks after a stale spell;
    * ``on_connect(connects)`` — after each successful handshake and resubscription.
    """

    def __init__(
        self,
        settings: KiteSettings,
        credentials: KiteCredentials,
        *,
        on_ticks: Callback | None = None,
        on_order_update: Callback | None = None,
        on_error: Callback | None = None,
        on_stale: Callback | None = None,
        on_connect: Callback | None = None,
        on_fresh: Callback | None = None,
        stale_after_s: float = 5.0,
        tick_silence_s: float | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_reconnects: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        token_watch: AccessTokenWatch | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self.token_watch = token_watch
        self._used_token: str | None = None
        self.on_ticks = on_ticks
        self.on_order_update = on_order_update
        self.on_error = on_error
        self.on_stale = on_stale
        self.on_connect = on_connect
        self.on_fresh = on_fresh
        self.stale_after_s = stale_after_s
        self.tick_silence_s = tick_silence_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_reconnects = max_reconnects
        self._clock = clock
        self._rng = random.Random()
        self.modes: dict[int, str] = {}
        self.stats = TickerStats()
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._last_message = 0.0
        self._last_tick = 0.0
        self._connection_stale = False  # this connection ended by the watchdog
        self._stale_spell = False  # stale since the last tick

    # --- subscriptions (desired state) ------------------------------------------------------

    async def subscribe(self, tokens: Iterable[int], mode: str = MODE_QUOTE) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        batch = [int(t) for t in tokens]
        for token in batch:
            self.modes[token] = mode
        await self._send(subscribe_message(batch), mode_message(mode, batch))

    async def set_mode(self, mode: str, tokens: Iterable[int]) -> None:
        batch = [int(t) for t in tokens if int(t) in self.modes]
        for token in batch:
            self.modes[token] = mode
        await self._send(mode_message(mode, batch))

    async def unsubscribe(self, tokens: Iterable[int]) -> None:
        batch = [int(t) for t in tokens]
        for token in batch:
            self.modes.pop(token, None)
        await self._send(unsubscribe_message(batch))

    async def _send(self, *messages: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return  # replayed on the next connection
        for message in messages:
            await ws.send_str(message)

    async def _resubscribe(self) -> None:
        groups: dict[str, list[int]] = {}
        for token, mode in self.modes.items():
            groups.setdefault(mode, []).append(token)
        for mode, tokens in groups.items():
            await self._send(subscribe_message(tokens), mode_message(mode, tokens))

    # --- connection loop --------------------------------------------------------------------

    def _url(self) -> URL:
        credentials = self.token_watch.credentials if self.token_watch else self._credentials
        self._used_token = credentials.require_access_token()
        return URL(self.settings.ws_url).update_query(
            api_key=credentials.api_key, access_token=self._used_token
        )

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def run(self) -> None:
        """Connect and stream until ``stop()``; reconnects on failure. Raises ``KiteTokenError``
        when the token is rejected, ``ConnectionError`` after ``max_reconnects`` failures."""
        self._stopping = False
        self._stop_requested.clear()
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.request_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping:
                connects_before, ticks_before = self.stats.connects, self.stats.ticks
                try:
                    await self._connect_and_read(session)
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status == 403:
                        message = "ticker handshake refused (403)"
                        await _call(self.on_error, message)
                        watch = self.token_watch
                        if watch is None:
                            raise KiteTokenError(message) from None
                        used = self._used_token
                        await watch.expired(used, str(KiteTokenError(message)))
                        if not await watch.wait_until_renewed(used, self._stop_requested):
                            break
                        failures = 0
                        continue
                    await self._report(f"ticker handshake failed ({exc.status})")
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    text = scrub(str(exc)) or type(exc).__name__
                    await self._report(f"ticker connection failed: {text}")
                if self._stopping:
                    break
                delivered = not self._connection_stale or self.stats.ticks > ticks_before
                if self.stats.connects > connects_before and delivered:
                    failures = 0  # the connection worked: start the backoff afresh
                if self.max_reconnects is not None and failures >= self.max_reconnects:
                    raise ConnectionError(f"ticker gave up after {failures} reconnect attempts")
                delay = self.backoff(failures)
                failures += 1
                log.info("ticker reconnecting in %.2fs (attempt %d)", delay, failures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)

    async def _report(self, text: str) -> None:
        log.warning("%s", text)
        await _call(self.on_error, text)

    async def _connect_and_read(self, session: aiohttp.ClientSession) -> None:
        ws = await session.ws_connect(self._url(), autoping=True, max_msg_size=0)
        self._ws = ws
        self.stats.connects += 1
        self._last_message = self._last_tick = self._clock()
        self._connection_stale = False
        watchdog = asyncio.create_task(self._watchdog(ws))
        try:
            await self._resubscribe()
            self.connected.set()
            await _call(self.on_connect, self.stats.connects)
            async for message in ws:
                self._last_message = self._clock()
                self.stats.messages += 1
                if message.type == aiohttp.WSMsgType.BINARY:
                    await self._on_binary(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            self.connected.clear()
            self._ws = None
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            if not ws.closed:
                await ws.close()
        if not self._stopping:
            code = ws.close_code
            await self._report(f"ticker connection closed (code {code})")

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        limits = [self.stale_after_s, *([self.tick_silence_s] if self.tick_silence_s else [])]
        period = max(0.01, min(limits) / 4)
        while not ws.closed:
            await asyncio.sleep(period)
            now = self._clock()
            silent = now - self._last_message
            tickless = now - self._last_tick
            if silent >= self.stale_after_s:
                what = "silent"
            elif self.tick_silence_s and self.modes and tickless >= self.tick_silence_s:
                what, silent = "without ticks", tickless
            else:
                continue
            self.stats.stale_events += 1
            self._connection_stale = self._stale_spell = True
            log.warning("ticker feed %s for %.1fs; reconnecting", what, silent)
            await _call(self.on_stale, silent)
            await ws.close()
            return

    async def _on_binary(self, data: bytes) -> None:
        if len(data) < 2:
            self.stats.heartbeats += 1
            return
        try:
            ticks = decode_message(data)
        except TickerProtocolError as exc:
            self.stats.protocol_errors += 1
            await self._report(f"undecodable ticker message ({len(data)} bytes): {exc}")
            return
        self.stats.ticks += len(ticks)
        if ticks:
            self._last_tick = self._clock()
            if self._stale_spell:
                self._stale_spell = False
                await _call(self.on_fresh)
            await _call(self.on_ticks, ticks, datetime.now(IST))

    async def _on_text(self, data: str) -> None:
        try:
            message = decode_text_message(data)
        except TickerProtocolError as exc:
            self.stats.protocol_errors += 1
            await self._report(str(exc))
            return
        if message.type == "order" and message.data:
            await _call(self.on_order_update, message.data)
        elif message.type == "error":
            await _call(self.on_error, f"kite: {message.data}")
        else:
            log.info("ticker message %s: %s", message.type, message.data)

    async def stop(self) -> None:
        """Close the connection and end ``run``, also during a reconnect backoff."""
        self._stopping = True
        self._stop_requested.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()
