"""The asyncio ticker client against the fake Kite websocket, with bars built from its ticks."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from brokers.kite.bar_aggregator import BarAggregator, BarBatch
from brokers.kite.errors import KiteTokenError
from brokers.kite.ticker_client import TickerClient
from brokers.kite.ticker_protocol import frame_packets
from config.sessions import IST, NSE
from tests.support.fake_kite.server import FakeKite

INFY, NIFTY = 408065, 256265
SYMBOLS = {INFY: "INFY", NIFTY: "NIFTY 50"}
OPEN = datetime(2024, 6, 5, 9, 15, tzinfo=IST)


def make_tick(token: int, ts: datetime, price: float, cum: int) -> dict[str, Any]:
    ohlc = {"open": 1000.0, "high": 2000.0, "low": 500.0, "close": 1000.0}
    if token == NIFTY:
        return {
            "tradable": False,
            "mode": "full",
            "instrument_token": token,
            "last_price": price,
            "ohlc": ohlc,
            "exchange_timestamp": ts,
        }
    return {
        "tradable": True,
        "mode": "full",
        "instrument_token": token,
        "last_price": price,
        "last_traded_quantity": 1,
        "average_traded_price": price,
        "volume_traded": cum,
        "total_buy_quantity": 0,
        "total_sell_quantity": 0,
        "ohlc": ohlc,
        "last_trade_time": ts,
        "exchange_timestamp": ts,
    }


def session_ticks(start: datetime, end: datetime, step_s: int = 10) -> list[list[dict]]:
    """One message per timestamp, both instruments, INFY with cumulative volume."""
    messages = []
    t, i = start, 0
    while t < end:
        i += 1
        messages.append(
            [
                make_tick(INFY, t, 1500.0 + (i % 7) * 0.05, 1000 + 37 * i),
                make_tick(NIFTY, t, 22000.0 + (i % 5) * 0.5, 0),
            ]
        )
        t += timedelta(seconds=step_s)
    return messages


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def client_for(fake: FakeKite, **kwargs: Any) -> TickerClient:
    kwargs.setdefault("backoff_base_s", 0.02)
    kwargs.setdefault("backoff_max_s", 0.1)
    return TickerClient(fake.settings(), fake.credentials(), **kwargs)


async def test_websocket_drop_mid_session_reconnects_resubscribes_and_bars_continue():
    async with FakeKite(heartbeat_s=0.05) as fake:
        agg = BarAggregator(1, SYMBOLS, grace_s=0, session=NSE)
        batches: list[BarBatch] = []
        received: list[dict] = []

        def on_ticks(ticks: list[dict], received_at: datetime) -> None:
            received.extend(ticks)
            for tick in ticks:
                batches.extend(agg.on_tick(tick, received_at))

        client = client_for(fake, on_ticks=on_ticks, stale_after_s=2.0)
        await client.subscribe([INFY, NIFTY], "full")
        runner = asyncio.create_task(client.run())
        await fake.ticker.wait_subscribed([INFY, NIFTY], "full")

        before = session_ticks(OPEN, OPEN.replace(minute=18, second=31))
        gap = session_ticks(OPEN.replace(minute=18, second=40), OPEN.replace(minute=20))
        after = session_ticks(OPEN.replace(minute=20), OPEN.replace(minute=25, second=1))
        for message in before:
            await fake.ticker.push(message)
        await until(lambda: len(received) == 2 * len(before))

        fake.inject("ticker", status=503, times=2)  # the first two reconnects are refused
        assert await fake.ticker.drop_connections() == 1
        for message in gap:  # traded while we were away: not delivered
            await fake.ticker.push(message)
        await until(lambda: client.stats.connects == 2 and client.connected.is_set())
        await fake.ticker.wait_subscribed([INFY, NIFTY], "full")
        # resubscription snapshots: latest tick per token after "subscribe" (quote mode, no
        # exchange time) and again after "mode" (full)
        await until(lambda: len(received) == 2 * len(before) + 4)
        for message in after:
            await fake.ticker.push(message)
        await until(lambda: len(received) == 2 * (len(before) + 2 + len(after)))
        await client.stop()
        await asyncio.wait_for(runner, 2)

    assert fake.count("ticker") == 4  # 2 handshakes + 2 refused
    assert fake.ticker.subscribe_messages == 2  # initial + automatic resubscription
    snapshot = received[2 * len(before) : 2 * len(before) + 4]
    assert [t["mode"] for t in snapshot] == ["quote", "quote", "full", "full"]
    assert [t["exchange_timestamp"] for t in snapshot[2:]] == [gap[-1][0]["exchange_timestamp"]] * 2
    assert agg.stats.no_timestamp == 2  # the quote-mode snapshots carry no exchange time

    # bars: every minute 09:15..09:24 exactly once (the 09:25:00 tick closed 09:24)
    stamps = [b.ts for b in batches]
    assert stamps == [OPEN + timedelta(minutes=m) for m in range(10)]
    assert all(set(b.bars) == {"INFY", "NIFTY 50"} for b in batches)
    assert agg.stats.late == 0
    # the 09:18 bar holds only what arrived before the cut (09:18:00–09:18:30)
    infy_1818 = batches[3].bars["INFY"]
    assert infy_1818[3] == before[-1][0]["last_price"]
    # volume traded during the gap is not lost: bars add up to the day's cumulative volume
    delivered_last_cum = after[-2][0]["volume_traded"]  # after[-1] is the open 09:25 bar
    assert sum(b.bars["INFY"][4] for b in batches) == delivered_last_cum
    assert all(b.bars["NIFTY 50"][4] == 0 for b in batches)


async def test_silent_feed_is_reported_stale_and_reconnected():
    async with FakeKite(heartbeat_s=60) as fake:  # no heartbeats: a dead-looking feed
        stale: list[float] = []
        client = client_for(fake, stale_after_s=0.2, on_stale=stale.append)
        await client.subscribe([INFY], "ltp")
        runner = asyncio.create_task(client.run())
        await until(lambda: client.stats.connects >= 2, timeout=3)
        await fake.ticker.wait_subscribed([INFY], "ltp")
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert stale and stale[0] >= 0.2
    assert client.stats.stale_events >= 1


async def test_heartbeats_keep_a_quiet_feed_alive():
    async with FakeKite(heartbeat_s=0.05) as fake:
        client = client_for(fake, stale_after_s=1.0)
        runner = asyncio.create_task(client.run())
        await until(lambda: client.stats.heartbeats >= 12, timeout=3)
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert client.stats.connects == 1 and client.stats.stale_events == 0


async def test_expired_token_stops_instead_of_looping(caplog):
    async with FakeKite() as fake:
        fake.expire_token()
        errors: list[str] = []
        client = client_for(fake, on_error=errors.append)
        with pytest.raises(KiteTokenError, match="trader kite login"):
            await asyncio.wait_for(client.run(), 3)
        assert fake.count("ticker") == 1
        assert errors == ["ticker handshake refused (403)"]


async def test_order_updates_errors_and_garbage_reach_callbacks():
    async with FakeKite(heartbeat_s=0.05) as fake:
        orders: list[dict] = []
        errors: list[str] = []
        ticks: list[dict] = []
        client = client_for(
            fake,
            on_order_update=orders.append,
            on_error=errors.append,
            on_ticks=lambda batch, _at: ticks.extend(batch),
        )
        await client.subscribe([INFY], "quote")
        runner = asyncio.create_task(client.run())
        await fake.ticker.wait_subscribed([INFY], "quote")
        await fake.ticker.send_order_update({"order_id": "1", "status": "COMPLETE"})
        await fake.ticker.send_error("too many subscriptions")
        await fake.ticker.send_raw(frame_packets([b"\x00" * 44])[:-5])  # truncated packet
        await fake.ticker.push([make_tick(INFY, OPEN, 1500.0, 10)])
        await until(lambda: len(ticks) == 1)
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert orders == [{"order_id": "1", "status": "COMPLETE"}]
    assert errors[0] == "kite: too many subscriptions"
    assert "undecodable ticker message" in errors[1]
    assert client.stats.protocol_errors == 1
    assert ticks[0]["mode"] == "quote" and "depth" not in ticks[0]  # streamed in quote mode


async def test_subscription_changes_while_connected():
    async with FakeKite(heartbeat_s=0.05) as fake:
        client = client_for(fake)
        runner = asyncio.create_task(client.run())
        await client.connected.wait()
        await client.subscribe([INFY, NIFTY])
        await fake.ticker.wait_subscribed([INFY, NIFTY], "quote")
        await client.set_mode("full", [NIFTY])
        await fake.ticker.wait_subscribed([NIFTY], "full")
        await client.unsubscribe([INFY])
        await until(lambda: INFY not in fake.ticker.connections[0].modes)
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert client.modes == {NIFTY: "full"}


async def test_credentials_never_reach_logs_or_error_texts(caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake = FakeKite()
    creds = fake.credentials(access_token="s3cr3t-token-value")
    settings = fake.settings(ws_url=f"ws://127.0.0.1:{port}/ws")
    errors: list[str] = []
    client = TickerClient(
        settings, creds, on_error=errors.append, backoff_base_s=0.01, max_reconnects=2
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectionError, match="gave up after 2"):
        await asyncio.wait_for(client.run(), 5)
    assert len(errors) == 3
    assert "s3cr3t-token-value" not in caplog.text + "".join(errors)
    assert "s3cr3t" not in repr(creds)


async def test_stop_interrupts_a_long_reconnect_backoff():
    async with FakeKite() as fake:
        fake.inject("ticker", status=503, times=None)
        client = client_for(fake, backoff_base_s=30.0, backoff_max_s=30.0)
        runner = asyncio.create_task(client.run())
        await until(lambda: fake.count("ticker") == 1)
        await asyncio.sleep(0.05)
        await client.stop()
        await asyncio.wait_for(runner, 1)
    assert client.stats.connects == 0


async def test_a_feed_that_beats_but_sends_no_ticks_is_recycled_within_the_limit():
    """Heartbeats keep coming, ticks stop (subscriptions lost server-side, nothing closed):
    detected within ``tick_silence_s``, reconnected, resubscribed, and the first tick after it
    announced as fresh."""
    async with FakeKite(heartbeat_s=0.05) as fake:
        stale: list[float] = []
        fresh: list[bool] = []
        client = client_for(
            fake, stale_after_s=2.0, tick_silence_s=0.3, on_stale=stale.append,
            on_fresh=lambda: fresh.append(True),
        )  # fmt: skip
        await client.subscribe([INFY], "full")
        runner = asyncio.create_task(client.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        ticking = True

        async def exchange() -> None:
            k = 0
            while ticking:
                k += 1
                await fake.ticker.push([make_tick(INFY, OPEN + timedelta(seconds=k), 100.0, k)])
                await asyncio.sleep(0.03)

        pusher = asyncio.create_task(exchange())
        await until(lambda: client.stats.ticks >= 3)
        assert fake.ticker.go_quiet() == 1
        loop = asyncio.get_running_loop()
        quiet_at = loop.time()
        await until(lambda: bool(stale), timeout=3)
        detected_after = loop.time() - quiet_at
        await until(lambda: client.stats.connects >= 2 and bool(fresh), timeout=3)
        ticking = False
        await pusher
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert 0.3 <= detected_after < 0.3 + 0.5  # within the limit (plus the watchdog's period)
    assert stale[0] >= 0.3 and client.stats.heartbeats > 0  # beats did not hide the silence
    assert fresh == [True] and client.stats.stale_events == 1


async def test_a_feed_that_keeps_going_quiet_is_retried_with_growing_backoff():
    """Each connection handshakes fine and then delivers nothing: the backoff is not reset
    by the handshake (no tight reconnect loop), only by a connection that delivered ticks."""
    async with FakeKite(heartbeat_s=0.05) as fake:
        client = client_for(fake, stale_after_s=2.0, tick_silence_s=0.05)
        attempts: list[int] = []
        backoff = client.backoff

        def recorded(attempt: int) -> float:
            attempts.append(attempt)
            return backoff(attempt) / 10

        client.backoff = recorded  # type: ignore[method-assign]
        await client.subscribe([INFY], "full")
        runner = asyncio.create_task(client.run())
        await until(lambda: client.stats.connects >= 4, timeout=5)
        await client.stop()
        await asyncio.wait_for(runner, 2)
    assert attempts[:3] == [0, 1, 2]
