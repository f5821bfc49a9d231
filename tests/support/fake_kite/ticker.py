"""The ticker half of the fake Kite: Kite's websocket protocol over aiohttp, driven by tests.

Behaves like ``wss://ws.kite.trade`` as far as a client can tell: the handshake needs
``api_key`` and ``access_token`` query parameters (403 otherwise); text frames
``{"a": "subscribe" | "unsubscribe" | "mode", "v": ...}`` change what the connection streams
(subscribe defaults to quote mode, as on Kite); a subscription or mode change is answered with
the instrument's latest tick as a snapshot; a 1-byte heartbeat goes out every ``heartbeat_s`` of
the connection's life; order updates and errors go out as JSON text frames.

Tests drive it: ``push`` ticks (full-mode dicts with the official field names; each connection
gets them in its own mode, framed into one binary message), ``drop_connections`` to simulate a
network cut, ``go_quiet`` for a connection that stops delivering ticks without closing,
``wait_subscribed`` to know a (re)connected client has resubscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from brokers.kite.ticker_protocol import (
    HEARTBEAT,
    MODE_QUOTE,
    MODES,
    Tick,
    encode_packet,
    error_message,
    frame_packets,
    order_update_message,
)

log = logging.getLogger(__name__)


@dataclass
class TickerConnection:
    """One client connection and what it streams (token → mode)."""

    number: int
    ws: web.WebSocketResponse
    request: web.Request
    modes: dict[int, str] = field(default_factory=dict)
    control_messages: list[Any] = field(default_factory=list)
    quiet: bool = False  # lost its subscriptions server-side: heartbeats only


class FakeTicker:
    def __init__(self, is_authorised: Callable[[str, str], bool], heartbeat_s: float = 1.0):
        self._is_authorised = is_authorised
        self.heartbeat_s = heartbeat_s
        self.connections: list[TickerConnection] = []
        self.latest: dict[int, Tick] = {}
        self.connects = 0
        self.subscribe_messages = 0
        self._changed = asyncio.Condition()

    # --- server side -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        api_key = request.query.get("api_key", "")
        token = request.query.get("access_token", "")
        if not self._is_authorised(api_key, token):
            return web.Response(status=403, text="invalid api_key or access_token")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connects += 1
        conn = TickerConnection(self.connects, ws, request)
        self.connections.append(conn)
        beats = asyncio.create_task(self._heartbeats(conn))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._control(conn, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            if conn in self.connections:
                self.connections.remove(conn)
            await self._notify()
        return ws

    async def _heartbeats(self, conn: TickerConnection) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not conn.ws.closed:
                await asyncio.sleep(self.heartbeat_s)
                await conn.ws.send_bytes(HEARTBEAT)

    async def _control(self, conn: TickerConnection, text: str) -> None:
        try:
            message = json.loads(text)
            action, value = message["a"], message["v"]
        except (ValueError, KeyError, TypeError):
            await conn.ws.send_str(error_message(f"invalid message: {text[:80]}"))
            return
        conn.control_messages.append(message)
        snapshot: list[int] = []
        if action == "subscribe":
            self.subscribe_messages += 1
            for token in value:
                conn.modes.setdefault(int(token), MODE_QUOTE)
                snapshot.append(int(token))
        elif action == "unsubscribe":
            for token in value:
                conn.modes.pop(int(token), None)
        elif action == "mode":
            mode, tokens = value
            if mode not in MODES:
                await conn.ws.send_str(error_message(f"invalid mode {mode!r}"))
                return
            for token in tokens:
                if int(token) in conn.modes:
                    conn.modes[int(token)] = mode
                    snapshot.append(int(token))
        else:
            await conn.ws.send_str(error_message(f"unknown action {action!r}"))
            return
        await self._send_ticks(conn, [self.latest[t] for t in snapshot if t in self.latest])
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    async def _send_ticks(conn: TickerConnection, ticks: Sequence[Tick]) -> None:
        if conn.quiet:
            return
        packets = [
            encode_packet({**tick, "mode": conn.modes[tick["instrument_token"]]})
            for tick in ticks
            if tick["instrument_token"] in conn.modes
        ]
        if packets and not conn.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_bytes(frame_packets(packets))

    # --- test controls ---------------------------------------------------------------------

    async def push(self, ticks: Iterable[Tick]) -> None:
        """Stream full-mode ticks to every connection subscribed to their tokens."""
        batch = list(ticks)
        for tick in batch:
            self.latest[int(tick["instrument_token"])] = tick
        for conn in list(self.connections):
            await self._send_ticks(conn, batch)

    async def send_order_update(self, order: dict[str, Any]) -> None:
        await self.send_text(order_update_message(order))

    async def send_error(self, text: str) -> None:
        await self.send_text(error_message(text))

    async def send_text(self, text: str) -> None:
        for conn in list(self.connections):
            if not conn.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(text)

    async def send_raw(self, data: bytes) -> None:
        """Any bytes as one binary frame (for malformed-message tests)."""
        for conn in list(self.connections):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_bytes(data)

    def go_quiet(self) -> int:
        """Every open connection stops delivering ticks — heartbeats go on, nothing closes —
        as when Kite loses a connection's subscriptions; a new connection streams again."""
        for conn in self.connections:
            conn.quiet = True
        return len(self.connections)

    async def drop_connections(self) -> int:
        """Cut every connection without a closing handshake, like a network failure."""
        dropped = 0
        for conn in list(self.connections):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
                dropped += 1
        return dropped

    async def close_connections(self, code: int = 1001, message: bytes = b"") -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=code, message=message)

    def subscribed(self, tokens: Iterable[int], mode: str | None = None) -> bool:
        wanted = set(tokens)
        return any(
            wanted <= set(conn.modes)
            and (mode is None or all(conn.modes[t] == mode for t in wanted))
            for conn in self.connections
            if not conn.ws.closed
        )

    async def wait_subscribed(
        self, tokens: Iterable[int], mode: str | None = None, timeout: float = 5.0
    ) -> None:
        """Until some open connection streams all ``tokens`` (in ``mode``, if given)."""
        wanted = list(tokens)
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.subscribed(wanted, mode))
