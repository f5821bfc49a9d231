"""Telegram alerts against a local fake Bot API: delivered in order, configured only when both
the bot token and chat id are set, the token never printed, and a slow or failing Bot API never
slowing the caller (bounded queue, oldest dropped and counted)."""

from __future__ import annotations

import asyncio
import logging
import time

from engine.alerting import AlertFeed
from engine.bus import EventBus
from engine.events import BrokerEvent, Fill, RiskEvent, Side, TradingState
from notify.telegram import TelegramAlerts, TelegramSettings
from tests.support.fake_telegram import FAKE_BOT_TOKEN, FAKE_CHAT_ID, FakeBotApi


async def until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def settings_for(api: FakeBotApi, **extra) -> TelegramSettings:
    return TelegramSettings(FAKE_BOT_TOKEN, FAKE_CHAT_ID, api.api_root, **extra)


def test_alerts_are_off_unless_token_and_chat_are_both_set():
    assert TelegramSettings.from_env({}) is None
    assert TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": FAKE_BOT_TOKEN}) is None
    on = TelegramSettings.from_env({}, {"TELEGRAM_BOT_TOKEN": FAKE_BOT_TOKEN,
                                        "TELEGRAM_CHAT_ID": FAKE_CHAT_ID})  # fmt: skip
    assert on is not None and on.chat_id == FAKE_CHAT_ID
    assert FAKE_BOT_TOKEN not in repr(on)


async def test_engine_events_reach_the_chat_in_order(caplog):
    async with FakeBotApi() as api:
        alerts = TelegramAlerts(settings_for(api))
        await alerts.start()
        bus = EventBus()
        feed = AlertFeed(bus, alerts, label="live")
        ts = 1717568100 * 10**9  # 2024-06-05 11:45 IST
        feed.session("started", "live", "run1")
        await bus.publish(Fill(ts, 1, "o1", "INFY", Side.BUY, 10, 1510.5, 4.2, "entry"))
        await bus.publish(
            RiskEvent(ts, 2, "deny", "max_positions", "INFY", "cap", TradingState.ACTIVE)
        )
        await bus.publish(RiskEvent(ts, 3, "state", "broker_token_expired", "", "403",
                                    TradingState.HALTED))  # fmt: skip
        await bus.publish(BrokerEvent(ts, 4, "token_expired", "Kite rejected the token", True))
        await bus.publish(BrokerEvent(ts, 5, "reconciled", "routine", False))
        feed.daily_summary("2024-06-05", 1234.5, 4, 1.25, "ACTIVE")
        assert await until(lambda: len(api.messages) == 5)
        await alerts.close()
    texts = api.texts()
    assert texts[0] == "[live] live session started (run run1)"
    assert texts[1] == "[live] 11:45:00 fill BUY 10 INFY @ 1510.50 (costs ₹4.20)"
    assert texts[2] == "[live] 11:45:00 trading HALTED: 403 [broker_token_expired]"
    assert texts[3].startswith("[live] 11:45:00 Kite token expired — run `trader kite login")
    assert texts[4] == ("[live] 2024-06-05 summary: P&L ₹1,234.50, 4 trades, drawdown 1.25%, "
                        "trading ACTIVE")  # fmt: skip
    assert {m["chat_id"] for m in api.messages} == {FAKE_CHAT_ID}
    assert alerts.sent == 5 and alerts.dropped == alerts.failed == 0
    assert FAKE_BOT_TOKEN not in caplog.text


async def test_a_slow_bot_api_never_slows_the_caller_and_drops_the_oldest(caplog):
    async with FakeBotApi() as api:
        api.delay_s = 0.5
        alerts = TelegramAlerts(settings_for(api, queue_size=3, timeout_s=2.0))
        await alerts.start()
        started = time.perf_counter()
        for k in range(20):
            alerts.alert(f"alert {k}")
        took = time.perf_counter() - started
        assert took < 0.05  # twenty alerts while the Bot API takes 0.5 s each
        assert alerts.dropped == 17
        api.delay_s = 0.0
        assert await until(lambda: len(api.messages) >= 3)
        await alerts.close()
    assert api.texts()[-2:] == ["alert 18", "alert 19"]  # the newest survive
    assert "alert 0" not in api.texts()


async def test_a_failing_bot_api_is_counted_and_logged_without_the_token(caplog):
    caplog.set_level(logging.WARNING)
    async with FakeBotApi() as api:
        api.fail_status = 500
        alerts = TelegramAlerts(settings_for(api, timeout_s=1.0))
        await alerts.start()
        alerts.alert("one")
        alerts.alert("two")
        assert await until(lambda: alerts.failed == 2)
        await alerts.close()
    assert api.requests == 2  # one try each: no retry storm
    assert "HTTP 500" in caplog.text and FAKE_BOT_TOKEN not in caplog.text
