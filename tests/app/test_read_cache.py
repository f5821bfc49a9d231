"""``app.web.read_cache``: however many readers, builds are bounded, and a reader after a commit
gets a reading that includes it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.web.read_cache import ReadCache, ReadPolicy


class Store:
    """A stand-in for the database: a version that commits bump, and readings that take time
    to build in a worker thread."""

    def __init__(self, build_s: float = 0.05) -> None:
        self.version = 0
        self.build_s = build_s

    def build(self, version: int) -> tuple[int, bytes]:
        threading.Event().wait(self.build_s)
        return 200, f"v{version}".encode()

    async def produce(self) -> tuple[int, int, bytes]:
        version = self.version
        status, body = await asyncio.to_thread(self.build, version)
        return version, status, body


def cache_for(store: Store, **policy: float) -> ReadCache:
    return ReadCache("test", lambda: store.version, store.produce, ReadPolicy(**policy))


async def test_concurrent_readers_share_one_build() -> None:
    store = Store()
    cache = cache_for(store)
    readings = await asyncio.gather(*(cache.get() for _ in range(200)))
    assert cache.builds == 1 and {r.body for r in readings} == {b"v0"}
    again = await asyncio.gather(*(cache.get() for _ in range(200)))
    assert cache.builds == 1 and {r.body for r in again} == {b"v0"}  # nothing committed


async def test_a_reader_after_a_commit_gets_a_reading_that_includes_it() -> None:
    store = Store(build_s=0.01)
    cache = cache_for(store, min_interval_s=0.2)
    assert (await cache.get()).body == b"v0"
    store.version = 1  # a commit right after a build: the next reader waits the interval out
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await cache.get()).body == b"v1"
    assert loop.time() - started >= 0.15
    assert cache.builds == 2


async def test_builds_are_bounded_by_the_interval_under_constant_commits() -> None:
    store = Store(build_s=0.005)
    cache = cache_for(store, min_interval_s=0.1)
    stop = asyncio.Event()

    async def commits() -> None:
        while not stop.is_set():
            store.version += 1
            await asyncio.sleep(0.001)

    async def reader() -> None:
        while not stop.is_set():
            reading = await cache.get()
            assert reading.body == f"v{reading.version}".encode()

    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = [asyncio.create_task(commits())] + [asyncio.create_task(reader()) for _ in range(50)]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = loop.time() - started
    assert 3 <= cache.builds <= elapsed / 0.1 + 2


async def test_an_old_reading_is_served_while_its_replacement_is_built() -> None:
    store = Store(build_s=0.2)
    cache = cache_for(store, max_age_s=0.05, min_interval_s=0.0)
    first = await cache.get()
    await asyncio.sleep(0.06)  # expired, nothing committed
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await cache.get() is first  # at once, not after the 0.2 s build
    assert loop.time() - started < 0.1 and cache.builds == 2
    await cache.close()
    assert (await cache.get()) is not first


async def test_a_failed_build_reaches_its_readers_and_the_next_one_retries() -> None:
    store = Store(build_s=0.0)
    calls = []

    async def produce() -> tuple[int, int, bytes]:
        calls.append(store.version)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return await store.produce()

    cache = ReadCache("test", lambda: store.version, produce, ReadPolicy(0, 0))
    with pytest.raises(RuntimeError, match="locked"):
        await cache.get()
    assert (await cache.get()).body == b"v0" and len(calls) == 2
