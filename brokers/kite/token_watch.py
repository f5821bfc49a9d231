"""The daily access token of a running live process: who holds it, and how a new one arrives.

Kite expires every access token around 06:00 IST. A daemon that runs for days meets that
every morning, at whichever call comes first: a REST call answered 403 ``TokenException``, or
the ticker's handshake refused. Retrying cannot help and exiting loses the operator's state
(the day's book, the dashboard); the cure is ``trader kite login --request-token …``, which
writes the new token to the secrets file. So one ``AccessTokenWatch`` per process:

* holds the current credentials, read by every Kite client when it builds a request or a
  websocket URL (so a renewed token reaches them all without a restart);
* ``expired(token, reason)``: whoever meets the rejection reports it; the first report of a
  token tells the listeners (the broker halts trading and raises the alert) and starts polling
  the secrets file — a local file read every ``poll_s``, never a request to Kite, so a dead
  token causes no retry storm; reports about a token already known dead, or older than the
  current one, are ignored;
* when the file holds a different token, it becomes current and the ``on_renewed`` listeners
  run (the broker reconciles with Kite and resumes). A new token that Kite rejects too is just
  reported as expired again, and the watch waits for yet another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from brokers.kite.auth import CredentialsError, KiteCredentials

log = logging.getLogger(__name__)

Listener = Callable[[str], Awaitable[None]]
RenewedListener = Callable[[KiteCredentials], Awaitable[None]]


class AccessTokenWatch:
    def __init__(
        self,
        credentials: KiteCredentials,
        reload: Callable[[], KiteCredentials],
        *,
        poll_s: float = 5.0,
    ) -> None:
        """``reload``: the credentials as stored now (``load_credentials`` with the process's
        settings: environment, then the secrets file ``trader kite login`` writes)."""
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self.credentials = credentials
        self._reload = reload
        self.poll_s = poll_s
        self._dead: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self.on_expired: list[Listener] = []
        self.on_renewed: list[RenewedListener] = []
        self.expiries = 0
        self.renewals = 0

    @property
    def token(self) -> str | None:
        return self.credentials.access_token

    @property
    def dead(self) -> bool:
        """True from a rejection of the current token until a new one is picked up."""
        return self._dead is not None and self._dead == self.token

    async def expired(self, token: str | None, reason: str) -> None:
        """Kite rejected ``token`` (the one the caller used). Only the current token's first
        report counts."""
        if token != self.token or self.dead:
            return
        self._dead = token
        self.expiries += 1
        log.warning("kite access token rejected: %s; waiting for `trader kite login`", reason)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="kite-token-watch")
        for listener in list(self.on_expired):
            await listener(reason)

    async def wait_until_renewed(self, token: str | None, stop: asyncio.Event) -> bool:
        """Until the current token is no longer ``token`` (True) or ``stop`` is set (False): a
        local check every ``poll_s``, for a client that cannot work without a live token."""
        while self.token == token:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
            if stop.is_set():
                return False
        return True

    async def _poll(self) -> None:
        while self.dead:
            await asyncio.sleep(self.poll_s)
            try:
                fresh = self._reload()
            except CredentialsError as exc:  # a half-written or unreadable file: try again
                log.warning("kite token watch: %s", exc)
                continue
            if fresh.access_token and fresh.access_token != self._dead:
                self.credentials = fresh
                self._dead = None
                self.renewals += 1
                log.info("kite access token renewed from the secrets file")
                for listener in list(self.on_renewed):
                    await listener(fresh)
                # a listener may have found the new token rejected too: then keep polling

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
