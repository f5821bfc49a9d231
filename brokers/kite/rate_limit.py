"""Client-side request pacing and retry backoff for Kite's REST limits.

Kite counts requests per rolling second per API key (3/s for historical candles, 10/s for most
other endpoints) and answers 429 beyond that. Pacing on our side keeps a long download from
spending its time in backoff; the retry policy handles the 429s and 5xx that still happen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from brokers.kite.errors import KiteRetryableError

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``max_calls`` acquisitions in any rolling window of ``period_s`` seconds.

    A sliding window (not fixed spacing) so a burst of ``max_calls`` may go at once, which is
    what Kite allows, and never a ``max_calls + 1``-th inside any window. Fair: waiters are
    served in arrival order because the lock is held while sleeping.
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
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.period_s:
                    self._starts.popleft()
                if len(self._starts) < self.max_calls:
                    self._starts.append(now)
                    return
                await self._sleep(self.period_s - (now - self._starts[0]))


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
