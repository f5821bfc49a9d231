"""Client-side request pacing and retry backoff for Kite's REST limits.

Kite counts requests per rolling second per API key (3/s for historical candles, 10/s for most
other endpoints) and answers 429 beyond that. Pacing on our side keeps a long download from
spending its time in backoff; the retry policy handles the 429s and 5xx that still happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from brokers.kite.errors import KiteRetryableError

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Slot:
    """One call's place in the window: counted from ``start`` (infinite while in flight)."""

    __slots__ = ("start",)

    def __init__(self, start: float) -> None:
        self.start = start


class RateLimiter:
    """At most ``max_calls`` calls in any rolling window of ``period_s`` seconds.

    A sliding window (not fixed spacing) so a burst of ``max_calls`` may go at once, which is
    what Kite allows, and never a ``max_calls + 1``-th inside any window. Fair: waiters are
    served in arrival order because the lock is held while sleeping.

    ``acquire`` counts a call from when it starts. ``hold`` counts it from when it *ends*: Kite
    counts requests when they arrive, which is somewhere between our start and our end (a
    worker thread may be busy, a connection slow), so only a window that starts at the end
    keeps Kite's count within the limit whatever those delays were. Orders use ``hold``.
    """

    def __init__(
        self,
        max_calls: int,
        period_s: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_calls < 1 or period_s <= 0:
            raise ValueError("rate limit needs max_calls >= 1 and period_s > 0")
        self.max_calls = max_calls
        self.period_s = period_s
        self._clock = clock
        self._sleep = sleep
        self._slots: list[_Slot] = []
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()

    async def acquire(self) -> None:
        """A slot counted from now."""
        await self._take(in_flight=False)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """A slot for the call made inside the block, counted from when the block ends (also
        when it fails: the request may have reached Kite)."""
        slot = await self._take(in_flight=True)
        try:
            yield
        finally:
            slot.start = self._clock()
            self._released.set()

    async def _take(self, in_flight: bool) -> _Slot:
        # After sleeping until the oldest slot expires, that slot counts as expired even if the
        # clock reads a rounding error short of its end: re-reading only the clock could spin
        # on a sub-ulp sleep forever (a fake clock advanced by the sleep never catches up).
        slept_until = -math.inf
        async with self._lock:
            while True:
                now = max(self._clock(), slept_until)
                self._slots = [s for s in self._slots if s.start + self.period_s > now]
                if len(self._slots) < self.max_calls:
                    slot = _Slot(math.inf if in_flight else now)
                    self._slots.append(slot)
                    return slot
                oldest = min(s.start for s in self._slots)
                if math.isinf(oldest):  # every slot is a call still in flight: wait for one
                    self._released.clear()
                    await self._released.wait()
                else:
                    slept_until = oldest + self.period_s
                    await self._sleep(slept_until - now)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: retry k waits uniform(c/2, c), c = min(max, base·2^k).

    Jitter keeps concurrent workers that were throttled together from retrying together; the
    lower bound keeps the backoff meaningful. A server's Retry-After, when given, is honoured.
    """

    max_retries: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        ceiling = min(self.max_s, self.base_s * (2**attempt))
        wait = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[int, KiteRetryableError, float], None] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``operation``, retrying ``KiteRetryableError`` up to ``policy.max_retries`` times.

    Other errors (token rejected, bad input) propagate at once: retrying cannot fix them.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except KiteRetryableError as exc:
            if attempt >= policy.max_retries:
                raise
            wait = policy.delay(attempt, exc.retry_after_s)
            if on_retry is not None:
                on_retry(attempt + 1, exc, wait)
            attempt += 1
            await sleep(wait)
