"""A local fake of Telegram's Bot API (``POST /bot<token>/sendMessage``) on 127.0.0.1, with
a slow or failing mode, so alert tests never reach Telegram."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from aiohttp import web

FAKE_BOT_TOKEN = "123456789:fake-bot-token-for-tests"
FAKE_CHAT_ID = "-100123"


class FakeBotApi:
    def __init__(self, token: str = FAKE_BOT_TOKEN) -> None:
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.delay_s = 0.0  # answer this late (a slow Bot API)
        self.fail_status: int | None = None  # answer every request with this status
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def texts(self) -> list[str]:
        return [str(m["text"]) for m in self.messages]

    async def _send_message(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            body = {"ok": False, "error_code": self.fail_status, "description": "injected"}
            return web.json_response(body, status=self.fail_status)
        message = await request.json()
        self.messages.append(message)
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})

    async def __aenter__(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send_message)
        # no access log: it is the fake *server's* log of the URL, which holds the bot token the
        # way Telegram's own logs would; tests assert that the engine's logs never do
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=0.2, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self._runner is not None:
            await self._runner.cleanup()
