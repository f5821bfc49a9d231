"""The official ``kiteconnect.KiteConnect`` client, made safe to call from the event loop.

Orders go through the official client (the reference for Kite's order endpoints) rather than our
own REST code. It is blocking (requests), so every call runs in a worker thread; each thread
gets its own client, because a ``requests.Session`` is not meant to be shared between threads.

This layer also owns pacing and error translation, so the broker reasons about typed outcomes:
* Kite's order limits (10 order requests per second per account, 200 per minute by default)
  gate place, modify and cancel together; a 10 requests/s limit gates reads; both are sliding
  windows (``RateLimiter``). An order request's window counts from when its answer came back
  (``RateLimiter.hold``), so Kite, counting arrivals, never sees an 11th in a second however
  our threads and connections delay the requests. One ``KiteOrderApi`` paces one account: a
  process trades one account through one broker. A 429 Kite still answers (another program on
  the account, say) is ``KiteRateLimitError``, which callers retry as back-pressure;
* the official client's exceptions and requests' network errors become ``brokers.kite.errors``
  types: token rejected, IP not registered (order requests only), rate limited, server
  trouble, network (no complete answer), refused. The message is Kite's own text (it is what
  an operator needs to read), scrubbed of secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from brokers.kite.auth import CredentialsError, KiteCredentials
from brokers.kite.errors import (
    KiteError,
    KiteInputError,
    KiteIpNotAllowedError,
    KiteNetworkError,
    KiteRateLimitError,
    KiteServerError,
    KiteTokenError,
)
from brokers.kite.rate_limit import Clock, RateLimiter, Sleep
from brokers.kite.settings import KiteSettings

T = TypeVar("T")
READS_PER_SECOND = 10


@dataclass(frozen=True)
class OrderRateLimit:
    """Kite's limits on order placement/modification/cancellation per API key."""

    per_second: int = 10
    per_minute: int = 200

    def limiters(self, clock: Clock | None = None, sleep: Sleep | None = None) -> list[RateLimiter]:
        extra: dict[str, Any] = {}
        if clock is not None:
            extra["clock"] = clock
        if sleep is not None:
            extra["sleep"] = sleep
        return [
            RateLimiter(self.per_second, 1.0, **extra),
            RateLimiter(self.per_minute, 60.0, **extra),
        ]


def translate_error(exc: BaseException, what: str, *, order_request: bool = False) -> KiteError:
    """An exception from the official client (or requests under it) → a typed ``KiteError``
    (which scrubs the text of secrets as it is built).

    ``order_request``: place, modify or cancel, the requests Kite checks against the app's
    registered static IP. A 403 there that is not about the token is that check."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KiteError):
        return exc
    if isinstance(exc, CredentialsError):  # no access token at all: the same cure as expiry
        return KiteTokenError(text, None)
    if isinstance(exc, kex.TokenException):
        return KiteTokenError(text, exc.code)
    if isinstance(exc, kex.KiteException):
        code = int(exc.code) if isinstance(exc.code, int) else 500
        kind = type(exc).__name__
        if order_request and (isinstance(exc, kex.PermissionException) or code == 403):
            return KiteIpNotAllowedError(text, code, kind)
        if code == 429:
            return KiteRateLimitError(f"{what}: rate limited: {text}", code, kind)
        if code >= 500 or isinstance(exc, kex.NetworkException | kex.DataException):
            return KiteServerError(f"{what}: Kite server trouble ({code}): {text}", code, kind)
        return KiteInputError(text, code, kind)
    if isinstance(exc, requests.RequestException):
        return KiteNetworkError(f"{what}: {text}")
    if isinstance(exc, OSError | TimeoutError):
        return KiteNetworkError(f"{what}: {text}")
    return KiteError(f"{what}: unexpected {type(exc).__name__}: {text}")


class KiteOrderApi:
    """Async calls for the order book and positions; every method raises typed ``KiteError``s."""

    def __init__(
        self,
        settings: KiteSettings,
        credentials: KiteCredentials,
        order_rate_limit: OrderRateLimit | None = None,
        *,
        client_factory: Callable[[], KiteConnect] | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._factory = client_factory or self._official_client
        self._local = threading.local()
        self.order_limiters = (order_rate_limit or OrderRateLimit()).limiters()
        self.read_limiter = RateLimiter(READS_PER_SECOND, 1.0)

    def use_credentials(self, credentials: KiteCredentials) -> None:
        """A new access token (the daily login): later calls build fresh clients with it."""
        self._credentials = credentials
        self._local = threading.local()

    def _official_client(self) -> KiteConnect:
        return KiteConnect(
            api_key=self._credentials.api_key,
            access_token=self._credentials.require_access_token(),
            root=self.settings.api_root,
            timeout=self.settings.request_timeout_s,
        )

    def _client(self) -> KiteConnect:
        client: KiteConnect | None = getattr(self._local, "client", None)
        if client is None:
            client = self._factory()
            self._local.client = client
        return client

    async def _call(self, what: str, fn: Callable[..., T], *, order: bool = False) -> T:
        """Run ``fn(client)`` in a worker thread, paced: an order request (``order``) by the
        order windows, held until it is answered; a read by the read window."""

        def run() -> T:
            try:
                return fn(self._client())
            except Exception as exc:  # translated into typed errors below
                raise translate_error(exc, what, order_request=order) from None

        if not order:
            await self.read_limiter.acquire()
            return await asyncio.to_thread(run)
        async with contextlib.AsyncExitStack() as held:
            for limiter in self.order_limiters:
                await held.enter_async_context(limiter.hold())
            return await asyncio.to_thread(run)

    # --- writes (order rate limit) --------------------------------------------------------

    async def place_order(self, params: dict[str, Any]) -> str:
        order_id = await self._call("place order", lambda k: k.place_order(**params), order=True)
        return str(order_id)

    async def modify_order(self, variety: str, order_id: str, **changes: Any) -> str:
        result = await self._call(
            f"modify order {order_id}",
            lambda k: k.modify_order(variety, order_id, **changes),
            order=True,
        )
        return str(result)

    async def cancel_order(self, variety: str, order_id: str) -> str:
        result = await self._call(
            f"cancel order {order_id}",
            lambda k: k.cancel_order(variety, order_id),
            order=True,
        )
        return str(result)

    # --- reads ----------------------------------------------------------------------------

    async def orders(self) -> list[dict[str, Any]]:
        return list(await self._call("orders", lambda k: k.orders()))

    async def order_history(self, order_id: str) -> list[dict[str, Any]]:
        return list(
            await self._call(
                f"order history {order_id}",
                lambda k: k.order_history(order_id),
            )
        )

    async def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        return list(
            await self._call(
                f"order trades {order_id}",
                lambda k: k.order_trades(order_id),
            )
        )

    async def profile(self) -> dict[str, Any]:
        return dict(await self._call("profile", lambda k: k.profile()))

    async def positions(self) -> dict[str, list[dict[str, Any]]]:
        data = await self._call("positions", lambda k: k.positions())
        return dict(data)

    async def instruments(self, exchange: str) -> list[dict[str, Any]]:
        return list(
            await self._call(
                f"instruments {exchange}",
                lambda k: k.instruments(exchange),
            )
        )
