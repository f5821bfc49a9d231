"""The daily token expiring in the middle of a live session (the fake Kite expires it): new
entries halt, the expiry is announced (a Telegram alert, to a fake Bot API), nothing hammers
Kite while the operator logs in, and the token ``trader kite login`` then writes is picked up
by the running session, which reconciles with the order book and trades on — without placing
anything twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from app.runners.live import live_session
from brokers.kite.auth import ENV_ACCESS_TOKEN, login, write_secrets_file
from config.settings import load_settings
from engine.events import BrokerEvent, TradingState
from engine.store.schema import RiskEventRow
from notify.telegram import TelegramAlerts, TelegramSettings
from strategies.sma_cross import SmaCross
from tests.app.test_live_mode import INFY, PATH, promoted, start_of, stored_fills, tick, until
from tests.support import PARAMS
from tests.support.fake_kite.server import FAKE_ACCESS_TOKEN, FAKE_REQUEST_TOKEN, FakeKite
from tests.support.fake_telegram import FAKE_BOT_TOKEN, FAKE_CHAT_ID, FakeBotApi

BUY_FILLED_AT = 9  # ticks 0..8: the cross up is decided on bar 7, filled when tick 8 arrives


async def test_token_expiry_halts_waits_for_a_new_login_and_resumes(tmp_path):
    engine = await promoted(tmp_path)
    settings = load_settings("live", interval="1minute")
    secrets = tmp_path / "kite.env"
    write_secrets_file(secrets, {ENV_ACCESS_TOKEN: FAKE_ACCESS_TOKEN})
    async with FakeKite(heartbeat_s=0.2) as fake, FakeBotApi() as phone:
        fake.add_instrument(INFY, "INFY")
        kite = fake.settings(secrets_file=secrets)
        alerts = TelegramAlerts(TelegramSettings(FAKE_BOT_TOKEN, FAKE_CHAT_ID, phone.api_root))
        await alerts.start()
        session = await live_session(
            settings, SmaCross(PARAMS), engine, kite, fake.credentials(), ["INFY"],
            broker_options={"poll_interval_s": 0.1}, flush_interval_s=None, token_poll_s=0.05,
            alerts=alerts,
        )  # fmt: skip
        broker_events: list[BrokerEvent] = []
        session.pipe.bus.subscribe(BrokerEvent, broker_events.append)
        recorded = set(fake.orders)
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        start = start_of(PATH) + timedelta(seconds=10)

        async def push(k: int) -> None:
            fake.prices["INFY"] = float(PATH[k])
            await fake.ticker.push([tick(start + timedelta(minutes=k), float(PATH[k]), 1000 * k)])
            closed = int((start_of(PATH) + timedelta(minutes=k - 1)).timestamp()) * 10**9
            await until(lambda: session.status.last_bar_ts >= closed, 3.0)
            await until(lambda: not session.pipe.broker.open_orders(), 5.0)

        for k in range(BUY_FILLED_AT):
            await push(k)
        assert await until(lambda: session.pipe.portfolio.holdings() == {"INFY": 10}, 5.0)

        # 06:00 IST, as it were: the token dies; the websockets meet it on reconnecting
        fake.expire_token()
        await fake.ticker.drop_connections()
        assert await until(lambda: session.pipe.state.state is TradingState.HALTED, 5.0)
        assert session.pipe.state.gate == "broker_token_expired"
        expired = [e for e in broker_events if e.kind == "token_expired"]
        assert len(expired) == 1 and expired[0].halts and "trader kite login" in expired[0].message
        # waiting costs Kite nothing: no reconnect attempts, no REST retries
        before = len(fake.requests)
        await asyncio.sleep(0.6)
        assert len(fake.requests) - before <= 1
        assert task.done() is False  # no crash

        # the operator logs in: the new token lands in the secrets file the daemon watches
        await asyncio.to_thread(
            login, kite, fake.credentials().with_access_token(None), FAKE_REQUEST_TOKEN
        )
        assert await until(lambda: session.pipe.state.state is TradingState.ACTIVE, 5.0)
        assert [e.kind for e in broker_events].count("token_renewed") == 1
        await fake.ticker.wait_subscribed([INFY], "full", timeout=10)

        for k in range(BUY_FILLED_AT, len(PATH)):  # down again: the exit, with the new token
            await push(k)
        assert await until(lambda: not session.pipe.portfolio.holdings(), 10.0)
        session.request_stop()
        await asyncio.wait_for(task, 20)
        await alerts.close()
    texts = phone.texts()
    assert texts[0].startswith("[live] live session started")
    expiry = next(i for i, t in enumerate(texts) if "Kite token expired" in t)
    halted = next(i for i, t in enumerate(texts) if "trading HALTED" in t)
    renewed = next(i for i, t in enumerate(texts) if "Kite token renewed" in t)
    resumed = next(i for i, t in enumerate(texts) if "trading ACTIVE" in t)
    assert expiry < renewed and halted < resumed, texts
    assert sum("fill BUY 10 INFY" in t for t in texts) == sum("fill SELL" in t for t in texts) == 1
    assert texts[-1].startswith("[live] live session stopped")
    placed = [history[-1] for oid, history in fake.orders.items() if oid not in recorded]
    assert [o["transaction_type"] for o in placed] == ["BUY", "SELL"]  # none placed twice
    assert len({o["tag"] for o in placed}) == 2
    assert all(o["status"] == "COMPLETE" for o in placed)
    run, fills, _ = stored_fills(engine)
    assert [(f.side, f.qty) for f in fills] == [(1, 10), (-1, 10)]
    with engine.connect() as conn:
        states = conn.execute(
            select(RiskEventRow.gate, RiskEventRow.state)
            .where(RiskEventRow.run_id == run.run_id)
            .order_by(RiskEventRow.seq)
        ).all()
    assert [tuple(s) for s in states] == [
        ("broker_token_expired", "HALTED"),
        ("broker_token_renewed", "ACTIVE"),
    ]
