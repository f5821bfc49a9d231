"""The pieces under ``KiteBroker``: tags, order parameters, the fill ledger, order snapshots,
error translation, and Kite's order-rate windows (with a fake clock, so a minute is instant)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests
from kiteconnect import exceptions as kex

from brokers.kite.auth import KiteCredentials
from brokers.kite.errors import (
    KiteInputError,
    KiteIpNotAllowedError,
    KiteNetworkError,
    KiteRateLimitError,
    KiteServerError,
    KiteTokenError,
)
from brokers.kite.order_api import OrderRateLimit, translate_error
from brokers.kite.order_params import (
    OrderParamsError,
    check_market_protection,
    kite_order_params,
)
from brokers.kite.order_state import FillLedger, KiteOrderSnapshot, KiteTrade
from brokers.kite.order_tags import OrderTagError, order_tag, order_tags
from brokers.kite.rate_limit import RateLimiter
from brokers.kite.settings import KiteSettings, KiteSettingsError
from engine.events import Order, OrderStatus, OrderType, Side
from tests.support.paths import KITE_MOCKS

FIXTURES = KITE_MOCKS
NAN = float("nan")


def order(kind: OrderType, side: Side = Side.BUY, limit: float = NAN, stop: float = NAN) -> Order:
    return Order(1, 1, "o1", "i1", "INFY", side, 3, kind, limit, stop, OrderStatus.OPEN)


# --- tags --------------------------------------------------------------------------------------


def test_tags_are_stable_short_and_distinct():
    tag = order_tag("o1", "run-1")
    assert tag == order_tag("o1", "run-1") and len(tag) == 20 and tag.startswith("nt")
    assert tag.isalnum()
    assert len({order_tag(f"o{n}", "run-1") for n in range(5000)}) == 5000
    assert order_tag("o1", "run-2") != tag  # order ids repeat across runs; tags must not
    assert order_tag("o1", prefix="eng").startswith("eng")
    with pytest.raises(OrderTagError, match="letters and digits"):
        order_tag("o1", prefix="n-t")
    with pytest.raises(OrderTagError, match="too long"):
        order_tag("o1", prefix="abcdefghijk")


def test_order_tags_reads_tag_and_tags_of_recorded_orders():
    orders = json.loads((FIXTURES / "orders.json").read_text())["data"]
    by_id = {o["order_id"]: order_tags(o) for o in orders}
    assert by_id["9000000000000000"] == ["connect test order2", "XXXXX"]
    assert by_id["300000000000000"] == []
    assert by_id["1953341975595868160"] == ["mktp", "mktp:2.00"]


# --- parameters --------------------------------------------------------------------------------


def test_params_per_order_type_with_prices_on_the_tick():
    common = {"exchange": "NSE", "product": "MIS", "tag": "t", "market_protection": 2.5}
    market = kite_order_params(order(OrderType.MARKET, Side.SELL), **common)
    assert market == {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "SELL",
        "quantity": 3,
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        "tag": "t",
        "market_protection": 2.5,
    }
    buy = kite_order_params(order(OrderType.LIMIT, limit=100.03), **common)
    sell = kite_order_params(order(OrderType.LIMIT, Side.SELL, limit=100.03), **common)
    assert (buy["price"], sell["price"]) == (100.0, 100.05)  # never worse than approved
    assert kite_order_params(order(OrderType.LIMIT, limit=100.05), **common)["price"] == 100.05
    assert "market_protection" not in buy  # a limit order carries its own price
    common["market_protection"] = -1
    stop = kite_order_params(order(OrderType.STOP, stop=99.96), **common)
    assert (stop["order_type"], stop["trigger_price"], stop["market_protection"]) == (
        "SL-M",
        99.95,
        -1,
    )
    assert "price" not in stop
    stop_limit = kite_order_params(order(OrderType.STOP_LIMIT, limit=101, stop=100), **common)
    assert (stop_limit["order_type"], stop_limit["price"], stop_limit["trigger_price"]) == (
        "SL",
        101.0,
        100.0,
    )
    assert "market_protection" not in stop_limit
    cnc = kite_order_params(order(OrderType.MARKET), **{**common, "product": "CNC"})
    assert cnc["product"] == "CNC"


def test_params_refuse_what_kite_would_refuse():
    common: dict[str, Any] = {"exchange": "NSE", "product": "MIS", "tag": "t"}
    with pytest.raises(OrderParamsError, match="o1: LIMIT order needs a positive limit_price"):
        kite_order_params(order(OrderType.LIMIT), **common)
    with pytest.raises(OrderParamsError, match="stop_price"):
        kite_order_params(order(OrderType.STOP_LIMIT, limit=100.0), **common)
    with pytest.raises(OrderParamsError, match="product 'NRML'"):
        kite_order_params(order(OrderType.MARKET), exchange="NSE", product="NRML", tag="t")
    # since April 2026 Kite rejects API market orders (MARKET and SL-M) without protection
    for kind in (OrderType.MARKET, OrderType.STOP):
        with pytest.raises(OrderParamsError, match=r"o1: a .* order needs market protection"):
            kite_order_params(order(kind, stop=100.0), **common)
        with pytest.raises(OrderParamsError, match="market_protection must be -1"):
            kite_order_params(order(kind, stop=100.0), **common, market_protection=0)


@pytest.mark.parametrize("value", [-1, 0.05, 1, 2.5, 100])
def test_market_protection_accepts_auto_or_a_percentage(value: float) -> None:
    assert check_market_protection(value) == value
    assert KiteSettings(market_protection=value).market_protection == value


@pytest.mark.parametrize("value", [0, -0.5, -2, 100.01, 250, float("nan"), float("inf")])
def test_market_protection_refuses_what_kite_refuses(value: float) -> None:
    """0 is Kite's "no protection"; other negatives than -1 and more than 100% mean nothing.
    The error names the setting, and from the environment, the variable."""
    with pytest.raises(ValueError, match="market_protection must be -1"):
        check_market_protection(value)
    with pytest.raises(KiteSettingsError, match=r"market_protection \(KITE_MARKET_PROTECTION\)"):
        KiteSettings.from_env({"KITE_MARKET_PROTECTION": str(value)})


def test_order_settings_from_the_environment() -> None:
    defaults = KiteSettings.from_env({})
    assert defaults.market_protection == -1  # Kite's automatic band unless told otherwise
    assert (defaults.market_remainder_timeout_s, defaults.market_remainder_replacements) == (
        10.0,
        1,
    )
    env = {
        "KITE_MARKET_PROTECTION": "1.5",
        "KITE_MARKET_REMAINDER_TIMEOUT_S": "4",
        "KITE_MARKET_REMAINDER_REPLACEMENTS": "0",
    }
    custom = KiteSettings.from_env(env)
    assert (custom.market_protection, custom.market_remainder_timeout_s) == (1.5, 4.0)
    assert custom.market_remainder_replacements == 0
    assert KiteSettings.from_env(env, market_protection=3).market_protection == 3
    with pytest.raises(KiteSettingsError, match="market_remainder_timeout_s"):
        KiteSettings.from_env({"KITE_MARKET_REMAINDER_TIMEOUT_S": "0"})


# --- snapshots and the fill ledger -------------------------------------------------------------


def test_snapshot_maps_kite_statuses():
    # a recorded history: PUT ORDER REQ RECEIVED, VALIDATION PENDING, ..., MODIFIED, OPEN
    history = json.loads((FIXTURES / "order_info.json").read_text())["data"]
    snaps = [KiteOrderSnapshot.parse(row) for row in history]
    assert len({s.kite_status for s in snaps}) >= 6
    assert {s.status for s in snaps} == {OrderStatus.OPEN} and not any(s.finished for s in snaps)
    book = {
        o["status"]: KiteOrderSnapshot.parse(o)
        for o in json.loads((FIXTURES / "orders.json").read_text())["data"]
    }
    assert book["REJECTED"].status == OrderStatus.REJECTED and book["REJECTED"].message
    assert book["CANCELLED"].status == OrderStatus.CANCELLED and book["CANCELLED"].finished
    done = book["COMPLETE"]
    assert (done.status, done.executed_qty) == (OrderStatus.FILLED, done.quantity)
    trigger = KiteOrderSnapshot.parse({"status": "TRIGGER PENDING", "transaction_type": "SELL"})
    assert (trigger.status, trigger.side, trigger.finished) == (OrderStatus.OPEN, Side.SELL, False)


def test_ledger_reports_each_trade_once_in_any_arrival_order():
    ledger = FillLedger()
    t1, t2 = KiteTrade("T1", 2, 100.0), KiteTrade("T2", 3, 101.0)
    assert ledger.record_trades([t1]) == [(2, 100.0, "T1")]
    assert ledger.catch_up(2, 100.0) is None
    assert ledger.record_trades([t1, t2]) == [(3, 101.0, "T2")]
    assert ledger.record_trades([t2, t1]) == [] and ledger.catch_up(5, 100.6) is None
    assert ledger.reported_qty == 5


def test_ledger_catches_up_when_trades_lag_and_absorbs_them_later():
    ledger = FillLedger()
    first = ledger.catch_up(2, 100.0)  # the order book says 2 filled; no trades yet
    assert first == (2, 100.0, "")
    # now 5 filled at an average of 100.6: the 3 new ones cost (503 - 200) / 3 = 101
    assert ledger.record_trades([KiteTrade("T1", 2, 100.0)]) == []  # absorbed
    assert ledger.catch_up(5, 100.6) == pytest.approx((3, 101.0, ""))
    assert ledger.record_trades([KiteTrade("T2", 1, 101.0), KiteTrade("T3", 2, 101.0)]) == []
    assert ledger.reported_qty == 5 and ledger.untraded_qty == 0
    assert ledger.reported_value == pytest.approx(503.0)


# --- errors and pacing -------------------------------------------------------------------------


def test_official_client_errors_become_typed_errors():
    KiteCredentials("key", "secret", "tok123-abcdef")  # loading credentials registers their values
    token = translate_error(kex.TokenException("bad tok123-abcdef"), "orders")
    assert isinstance(token, KiteTokenError) and "tok123-abcdef" not in str(token)
    assert isinstance(translate_error(kex.NetworkException("slow", 429), "x"), KiteRateLimitError)
    assert isinstance(translate_error(kex.NetworkException("oms"), "x"), KiteServerError)
    assert isinstance(translate_error(kex.GeneralException("boom", 502), "x"), KiteServerError)
    refused = translate_error(kex.InputException("RMS:Margin Exceeds"), "x")
    assert isinstance(refused, KiteInputError) and str(refused) == "RMS:Margin Exceeds"
    assert isinstance(translate_error(kex.OrderException("no", 400), "x"), KiteInputError)
    timeout = translate_error(requests.ReadTimeout("read timed out"), "place order")
    assert isinstance(timeout, KiteNetworkError) and "place order" in str(timeout)


async def test_order_rate_windows_per_second_and_per_minute():
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limiters = OrderRateLimit(per_second=10, per_minute=200).limiters(lambda: now[0], sleep)
    times: list[float] = []
    for _ in range(201):
        for limiter in limiters:
            await limiter.acquire()
        times.append(now[0])
    for i, start in enumerate(times):  # never an 11th inside any one-second window
        assert sum(1 for t in times[i:] if t - start < 1.0) <= 10
    assert times[199] < 60.0 <= times[200]  # the 201st waits for the minute to roll


def test_an_order_request_refused_for_its_ip_is_its_own_error():
    """Kite checks order requests (not reads) against the app's registered static IP; a 403
    there that is not about the token says the IP is not registered, and the message says
    where to register it."""
    refusal = kex.PermissionException("IP 198.51.100.4 is not allowed", 403)
    ip = translate_error(refusal, "place order", order_request=True)
    assert isinstance(ip, KiteIpNotAllowedError) and not isinstance(ip, KiteInputError)
    assert "IP Whitelist" in str(ip) and "developers.kite.trade" in str(ip)
    assert "198.51.100.4 is not allowed" in str(ip)  # Kite's own words too
    generic = kex.GeneralException("Forbidden", 403)
    assert isinstance(translate_error(generic, "cancel", order_request=True), KiteIpNotAllowedError)
    assert isinstance(translate_error(refusal, "orders"), KiteInputError)  # a read
    token = translate_error(kex.TokenException("expired"), "x", order_request=True)
    assert isinstance(token, KiteTokenError)


async def test_held_slots_count_from_when_the_call_ended():
    """Kite counts order requests when they arrive, somewhere between our start and our end:
    a window counted from the end keeps Kite's count within 10 whatever the delays."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    (limiter,) = OrderRateLimit(per_second=2, per_minute=200).limiters(lambda: now[0], sleep)[:1]
    starts: list[float] = []
    for _ in range(3):
        async with limiter.hold():
            starts.append(now[0])
            now[0] += 0.4  # the call takes 0.4 s
    # calls end at 0.4 and 0.8; the third may start 1 s after the first ended, not at 1.0
    assert starts == pytest.approx([0.0, 0.4, 1.4])

    one = RateLimiter(1, 1.0)
    async with one.hold():  # in flight: a second caller waits for it, whatever the clock says
        waiter = asyncio.create_task(one.acquire())
        await asyncio.sleep(0.05)
        assert not waiter.done()
    await asyncio.wait_for(waiter, 2.0)  # then one second after it ended
