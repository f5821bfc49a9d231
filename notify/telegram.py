"""Alerts to a Telegram chat through the Bot API (``sendMessage``) over aiohttp.

Off unless configured: ``TELEGRAM_BOT_TOKEN`` and ``TELEGRAM_CHAT_ID`` from the environment or
the private secrets file (the Kite one; same ``KEY=VALUE`` format, mode 0600). The bot token
is a credential — it is in every request URL — so it is registered with ``config.redact`` the
moment it is read and never printed; error texts are scrubbed.

Never in the way of trading: ``alert`` appends to a bounded queue and returns; one background
task sends, one message at a time, each request bounded by ``timeout_s``. When the Bot API is
slow or down the queue fills and the *oldest* message is dropped (the newest state matters
most), counted in ``dropped``; a failed send is counted in ``failed`` and logged, not retried
in a loop (Telegram's 429 ``retry_after`` is honoured once, capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from config.redact import register_secret, scrub

log = logging.getLogger(__name__)

ENV_BOT_TOKEN = "TELEGRAM_BOT_TOKEN"
ENV_CHAT_ID = "TELEGRAM_CHAT_ID"
ENV_API_ROOT = "TELEGRAM_API_ROOT"
DEFAULT_API_ROOT = "https://api.telegram.org"
MAX_TEXT = 4096  # Telegram's limit per message


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: str = field(repr=False)
    chat_id: str
    api_root: str = DEFAULT_API_ROOT
    queue_size: int = 100
    timeout_s: float = 5.0
    max_retry_after_s: float = 10.0

    def __post_init__(self) -> None:
        register_secret(self.bot_token)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
    ) -> TelegramSettings | None:
        """Settings if a bot token and a chat id are configured (environment first, then the
        secrets file's values), else None: alerts are off."""
        source = os.environ if env is None else env
        stored = secrets or {}
        token = source.get(ENV_BOT_TOKEN) or stored.get(ENV_BOT_TOKEN)
        chat = source.get(ENV_CHAT_ID) or stored.get(ENV_CHAT_ID)
        if not token or not chat:
            return None
        root = source.get(ENV_API_ROOT) or stored.get(ENV_API_ROOT) or DEFAULT_API_ROOT
        return cls(token, chat, root.rstrip("/"))


class TelegramAlerts:
    """``engine.ports.Alerts`` over the Bot API. ``start()`` in the running loop, ``close()``
    at the end (it tries to send what is queued for up to ``timeout_s``)."""

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def alert(self, text: str) -> None:
        if len(self._queue) >= self.settings.queue_size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(scrub(text)[:MAX_TEXT])
        self._ready.set()

    async def start(self) -> None:
        if self._task is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._task = asyncio.create_task(self._run(), name="telegram-alerts")

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed(), self.settings.timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _flushed(self) -> None:
        while self._queue:
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                await self._send(self._queue[0])
                if self._queue:
                    self._queue.popleft()
            self._ready.clear()

    async def _send(self, text: str) -> None:
        assert self._session is not None
        url = f"{self.settings.api_root}/bot{self.settings.bot_token}/sendMessage"
        body = {"chat_id": self.settings.chat_id, "text": text, "disable_web_page_preview": True}
        for attempt in range(2):
            try:
                async with self._session.post(url, json=body) as response:
                    if response.status == 429 and attempt == 0:
                        answer = await response.json(content_type=None)
                        wait = float((answer.get("parameters") or {}).get("retry_after", 1))
                        await asyncio.sleep(min(wait, self.settings.max_retry_after_s))
                        continue
                    if response.status >= 400:
                        raise ValueError(f"the Bot API answered HTTP {response.status}")
                self.sent += 1
                return
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.failed += 1
                log.warning("telegram alert not sent: %s", scrub(str(exc) or type(exc).__name__))
                return
