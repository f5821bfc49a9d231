"""Reads of the daemon's state that cost the trading loop next to nothing, however many arrive.

``GET /api/state`` and ``GET /metrics`` need no token, and answering them means reading the run
from the database (tens of milliseconds once a run is some weeks old). Done per request on the
event loop — the loop that also processes bars — a dashboard left open in a few tabs, or anyone
flooding the port, would delay trading by whatever they asked for. So a read endpoint serves a
*reading* (status and body, ready to send), and readings are built:

- **off the loop**: only a cheap capture of in-memory numbers runs on the session's event loop;
  the database reads and the encoding run in a worker thread (how, ``produce`` decides:
  ``app.http_api`` wires it);
- **one at a time, at most once per** ``min_interval_s``: concurrent readers share the build in
  flight, so a flood of GETs costs one build, not one per request;
- **when needed**: after something was committed (``version``: the database's commit count, so
  a reading is rebuilt after each bar and each operator action), or when the last reading is
  older than ``max_age_s`` (log lines change without a commit) — an expired reading is served
  at once while its replacement is built.

A reader that comes after a commit waits for a reading that includes it, so the operator who
just pressed the kill switch sees HALTED, not the reading before: the bound on builds is paid
for with the reader's latency (at most ``min_interval_s`` plus one build), never the loop's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, event

log = structlog.get_logger()

#: a reading may be this old before the next request has it rebuilt (in the background)
DEFAULT_MAX_AGE_S = 2.0
#: never more than one build started per this many seconds
DEFAULT_MIN_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Reading:
    """One answer, ready to send: ``version`` is the commit count it includes, ``started`` the
    monotonic time its build began (its data is at least this fresh)."""

    status: int
    body: bytes
    version: int
    started: float


@dataclass(frozen=True)
class ReadPolicy:
    """How fresh readings are and how often they may be built."""

    max_age_s: float = DEFAULT_MAX_AGE_S
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S


#: builds one answer: (the version it includes, HTTP status, body)
Produce = Callable[[], Awaitable[tuple[int, int, bytes]]]


class CommitCounter:
    """Counts the transactions committed on ``engine`` — the version of the stored state.

    A SQLAlchemy ``commit`` listener, so nothing in the session or the recorder has to know
    about the HTTP API; it runs on the committing thread (the event loop) and costs an
    increment."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        self.count += 1

    def close(self) -> None:
        if event.contains(self.engine, "commit", self._on_commit):
            event.remove(self.engine, "commit", self._on_commit)


class ReadCache:
    """Serves readings made by ``produce`` as the module doc describes; ``version()`` is the
    current commit count (cheap, callable from the serving loop); ``builds`` counts readings.
    Used from one event loop (the HTTP server's)."""

    def __init__(
        self,
        name: str,
        version: Callable[[], int],
        produce: Produce,
        policy: ReadPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or ReadPolicy()
        self.builds = 0
        self._version = version
        self._produce = produce
        self._clock = clock
        self._last: Reading | None = None
        self._task: asyncio.Task[Reading] | None = None
        self._task_version = -1
        self._last_start = float("-inf")

    async def get(self) -> Reading:
        """A reading that includes every commit made before this call."""
        wanted = self._version()
        while True:
            last = self._last
            if last is not None and last.version >= wanted:
                if self._clock() - last.started >= self.policy.max_age_s:
                    self._refresh()
                return last
            task = self._task
            if task is not None:
                if self._task_version >= wanted:
                    # shielded: a reader that goes away must not cancel everyone's build
                    return await asyncio.shield(task)
                await asyncio.wait([task])  # an older build: let it finish, then build anew
                continue
            wait = self._last_start + self.policy.min_interval_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._start()

    def _refresh(self) -> None:
        """Start a build in the background if none is running and the interval allows."""
        if self._task is None and self._clock() >= self._last_start + self.policy.min_interval_s:
            self._start()

    def _start(self) -> None:
        started = self._last_start = self._clock()
        self.builds += 1

        async def build() -> Reading:
            version, status, body = await self._produce()
            return Reading(status, body, version, started)

        task = asyncio.create_task(build(), name=f"read-{self.name}")
        # ``produce`` reports the version it captured, at least this one (versions only grow)
        self._task, self._task_version = task, self._version()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Reading]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # the readers awaiting it get the exception; log it once here
            log.error("http.read_failed", endpoint=self.name, error=f"{type(exc).__name__}: {exc}")
            return
        reading = task.result()
        if self._last is None or reading.version >= self._last.version:
            self._last = reading

    async def close(self) -> None:
        """Wait for a build in flight (its thread cannot be cancelled) before the database
        goes away."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])
