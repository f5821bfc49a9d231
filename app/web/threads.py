"""The HTTP API on its own thread and event loop, and the way back to the session's loop.

Even when every read is a ready-made answer (``app.web.read_cache``), aiohttp's own handling
of a request — parsing it, the middlewares, writing the answer — costs a millisecond or two of
CPU on a small machine. Served on the session's event loop, 200 clients polling as fast as
they can keep that loop busy for hundreds of milliseconds per round, and a bar waits behind
them. So the daemon serves HTTP from a thread of its own (``ApiServer``): the trading loop then
only shares the interpreter with it, which hands control back within Python's switch interval
(5 ms) whenever the loop has work.

Everything that touches the session — operator controls, the capture of in-memory numbers for
a reading — still runs on the session's loop, between bars (``SessionLoop.call``). Tests that
serve the app on the session's own loop (aiohttp's test server) go through the same calls,
which then simply run in place.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class SessionLoop:
    """Runs coroutines on the session's event loop, from whichever loop serves HTTP."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()`` on the session's loop (in place when already there)."""
        if asyncio.get_running_loop() is self.loop:
            return await work()

        async def run() -> T:
            return await work()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.loop))


class ApiServer:
    """Serves ``app`` on ``host:port`` from a thread running its own event loop.

    ``await server.start()`` returns once it listens, or raises what stopped it (an
    ``OSError`` when the port is taken);
    ``await server.cleanup()`` stops it — both from the session's loop, which keeps running
    meanwhile, so handlers waiting on it finish."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="http-api", daemon=True)
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def addresses(self) -> list[Any]:
        return self.runner.addresses

    async def start(self) -> None:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._failure is not None:
            await asyncio.to_thread(self._thread.join)
            raise self._failure

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._listen())
        except BaseException as exc:  # raised again by start(), on the session's side
            self._failure = exc
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _listen(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()

    async def cleanup(self) -> None:
        """Stop serving: the app's cleanup runs on the server's loop, then the thread ends."""
        if not self._thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        await asyncio.wrap_future(done)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
