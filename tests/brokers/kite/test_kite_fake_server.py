"""The official ``kiteconnect.KiteConnect`` client, pointed at the fake, reads the fixtures' data.

The expected values are the recorded fixture files run through the official client's own
formatting (``_format_response`` etc.), so "same data" means exactly what a user of the official
client would see against real Kite returning those recordings.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from brokers.kite.ticker_protocol import decode_text_message
from tests.support.fake_kite.order_rules import MARKET_PROTECTION_REQUIRED, OrderRules
from tests.support.fake_kite.server import FAKE_REQUEST_TOKEN, FakeKite
from tests.support.paths import KITE_MOCKS

FIXTURES = KITE_MOCKS


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fake():
    with FakeKite().in_thread() as running:
        yield running


@pytest.fixture
def kite(fake):
    return KiteConnect(fake.api_key, fake.credentials().access_token, root=fake.api_root)


def test_account_endpoints_match_fixtures(kite):
    assert kite.profile() == fixture("profile.json")["data"]
    assert kite.margins() == fixture("margins.json")["data"]
    assert kite.margins("equity") == fixture("margins.json")["data"]["equity"]
    assert kite.positions() == fixture("positions.json")["data"]
    assert kite.holdings() == fixture("holdings.json")["data"]


def test_orders_and_trades_match_fixtures(kite):
    assert kite.orders() == kite._format_response(fixture("orders.json")["data"])
    history = fixture("order_info.json")["data"]
    assert kite.order_history(history[0]["order_id"]) == kite._format_response(history)
    trade = fixture("order_trades.json")["data"]
    assert kite.order_trades(trade[0]["order_id"]) == kite._format_response(trade)
    assert kite.trades() == kite._format_response(fixture("trades.json")["data"])


def test_market_data_matches_fixtures(kite):
    quote = fixture("quote.json")["data"]
    assert kite.quote("NSE:INFY") == {"NSE:INFY": kite._format_response(quote["NSE:INFY"])}
    assert kite.quote("NSE:UNKNOWN") == {}
    assert kite.ltp("NSE:INFY")["NSE:INFY"]["last_price"] == quote["NSE:INFY"]["last_price"]
    assert kite.ohlc("NSE:INFY")["NSE:INFY"]["ohlc"] == quote["NSE:INFY"]["ohlc"]
    nse = (FIXTURES / "instruments_nse.csv").read_bytes()
    assert kite.instruments("NSE") == kite._parse_instruments(nse)
    assert kite.instruments() == kite._parse_instruments(
        (FIXTURES / "instruments_all.csv").read_bytes()
    )
    nfo = kite.instruments("NFO")
    assert nfo and all(row["exchange"] == "NFO" for row in nfo)


def test_historical_candles_match_fixture(kite):
    recorded = fixture("historical_minute.json")["data"]
    got = kite.historical_data(408065, "2017-12-15 09:15:00", "2017-12-15 09:20:00", "minute")
    assert got == kite._format_historical(recorded)


def test_historical_outside_the_recording_is_synthetic_but_stable(kite):
    a = kite.historical_data(408065, "2021-03-01 00:00:00", "2021-03-05 23:59:59", "minute")
    b = kite.historical_data(408065, "2021-03-03 00:00:00", "2021-03-03 23:59:59", "minute")
    assert len(a) == 5 * 375  # five weekdays of 09:15–15:29
    assert [c for c in a if c["date"].day == 3] == b
    assert all(c["low"] <= min(c["open"], c["close"]) <= c["high"] for c in a)
    five = kite.historical_data(408065, "2021-03-03 00:00:00", "2021-03-03 23:59:59", "5minute")
    assert len(five) == 75
    assert five[0]["volume"] == sum(c["volume"] for c in b[:5])


def test_historical_range_limit_is_enforced(kite):
    with pytest.raises(kex.InputException, match="max limit: 60 days"):
        kite.historical_data(408065, "2021-01-01 00:00:00", "2021-03-05 00:00:00", "minute")
    with pytest.raises(kex.InputException, match="invalid `from`"):
        kite.historical_data(408065, "yesterday", "2021-03-05 00:00:00", "minute")
    with pytest.raises(kex.InputException, match="invalid interval"):
        kite.historical_data(408065, "2021-03-01", "2021-03-05", "2minute")


def test_generate_session_matches_fixture_and_new_token_works(fake):
    client = KiteConnect(fake.api_key, root=fake.api_root)
    session = client.generate_session(FAKE_REQUEST_TOKEN, fake.api_secret)
    recorded = fixture("generate_session.json")["data"]
    for key in recorded.keys() - {"access_token", "api_key", "login_time"}:
        assert session[key] == recorded[key], key
    assert session["access_token"] != fake.credentials().access_token
    assert client.profile()["user_id"] == "AB1234"  # the new token is accepted
    with pytest.raises(kex.TokenException):  # request tokens are single use
        client.generate_session(FAKE_REQUEST_TOKEN, fake.api_secret)


def test_generate_session_checks_the_checksum(fake):
    client = KiteConnect(fake.api_key, root=fake.api_root)
    with pytest.raises(kex.TokenException, match="checksum"):
        client.generate_session(FAKE_REQUEST_TOKEN, "wrong secret")


def test_injected_faults_surface_as_kite_errors(fake, kite):
    fake.inject("profile", status=429)
    with pytest.raises(kex.NetworkException):
        kite.profile()
    fake.inject("profile", status=503)
    with pytest.raises(kex.NetworkException):
        kite.profile()
    assert kite.profile()["user_id"] == "AB1234"  # faults were one-shot
    fake.inject("orders", status=500, skip=1)
    kite.orders()
    with pytest.raises(kex.NetworkException):
        kite.orders()
    assert fake.count("profile") == 3 and fake.count("orders") == 2


def test_slow_response_times_out_the_client(fake):
    impatient = KiteConnect(
        fake.api_key, fake.credentials().access_token, root=fake.api_root, timeout=0.2
    )
    fake.inject("profile", delay_s=1.0)
    with pytest.raises(Exception, match=r"(?i)timed out"):
        impatient.profile()


def test_token_expiry_is_a_token_exception(fake, kite):
    fake.expire_token()
    with pytest.raises(kex.TokenException):
        kite.positions()


def place(kite: KiteConnect, **extra: Any) -> str:
    params = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": 2,
        "product": "MIS",
        "order_type": "LIMIT",
        "price": 1500.0,
    }
    params.update(extra)
    order_id: str = kite.place_order(**params)
    return order_id


def test_order_lifecycle(fake, kite):
    order_id = place(kite, tag="intent-1")
    assert kite.order_history(order_id)[-1]["status"] == "OPEN"
    assert kite.modify_order("regular", order_id, price=1490.0) == order_id
    assert kite.order_history(order_id)[-1]["price"] == 1490.0
    assert kite.cancel_order("regular", order_id) == order_id
    last = kite.order_history(order_id)[-1]
    assert (last["status"], last["cancelled_quantity"], last["tag"]) == ("CANCELLED", 2, "intent-1")
    with pytest.raises(kex.InputException, match="CANCELLED"):
        kite.cancel_order("regular", order_id)
    assert kite.orders()[-1]["order_id"] == order_id

    fake.prices["INFY"] = 1510.5
    market = place(kite, order_type="MARKET", price=None, market_protection=-1)
    done = kite.order_history(market)[-1]
    assert (done["status"], done["average_price"]) == ("COMPLETE", 1510.5)
    assert kite.order_trades(market)[0]["quantity"] == 2


def test_order_rejections(fake, kite):
    fake.reject_orders()
    rejected = place(kite)
    last = kite.order_history(rejected)[-1]
    assert last["status"] == "REJECTED" and "Margin Exceeds" in last["status_message"]
    fake.reject_orders("Markets are closed right now.", at_placement=True)
    with pytest.raises(kex.InputException, match="closed"):
        place(kite)
    with pytest.raises(kex.InputException, match="tag"):
        place(kite, tag="x" * 21)
    assert kite.order_history(place(kite))[-1]["status"] == "OPEN"


async def test_order_updates_are_pushed_on_the_websocket():
    async with FakeKite(heartbeat_s=0.05) as fake, aiohttp.ClientSession() as session:
        creds = fake.credentials()
        url = f"{fake.ws_url}?api_key={creds.api_key}&access_token={creds.access_token}"
        async with session.ws_connect(url) as ws:
            kite = KiteConnect(fake.api_key, creds.access_token, root=fake.api_root)
            order_id = await asyncio.to_thread(place, kite)
            heartbeats = 0
            while True:
                msg = await asyncio.wait_for(ws.receive(), 2)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    assert msg.data == b"\x00"
                    heartbeats += 1
                    continue
                update = decode_text_message(msg.data)
                break
        assert update.type == "order"
        assert update.data["order_id"] == order_id and update.data["status"] == "OPEN"
        assert update.data["unfilled_quantity"] == 2


async def test_websocket_handshake_needs_valid_credentials():
    async with FakeKite() as fake, aiohttp.ClientSession() as session:
        url = f"{fake.ws_url}?api_key={fake.api_key}&access_token=stale"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url)
        assert info.value.status == 403


# --- Kite's rules for API orders since 1 April 2026 ----------------------------------------


@pytest.mark.parametrize("order_type", ["MARKET", "SL-M"])
def test_market_orders_need_market_protection(kite, order_type):
    """The official client's ``market_protection`` parameter reaches the fake; without it, or
    with 0, Kite's own refusal comes back as an InputException."""
    extra = {"order_type": order_type, "price": None, "trigger_price": 1490.0}
    if order_type == "MARKET":
        extra.pop("trigger_price")
    for refused in ({}, {"market_protection": 0}):
        with pytest.raises(kex.InputException, match="^" + re.escape(MARKET_PROTECTION_REQUIRED)):
            place(kite, **extra, **refused)
    for bad in (-2, 101):
        with pytest.raises(kex.InputException, match="invalid `market_protection`"):
            place(kite, **extra, market_protection=bad)
    for good in (-1, 2.5):
        order_id = place(kite, **extra, market_protection=good)
        assert kite.order_history(order_id)[-1]["market_protection"] == good
    # limit and stop-limit orders carry their own price: no protection needed
    assert kite.order_history(place(kite))[-1]["market_protection"] == 0
    stop_limit = place(kite, order_type="SL", trigger_price=1495.0)
    assert kite.order_history(stop_limit)[-1]["status"] == "TRIGGER PENDING"


def test_more_than_ten_order_requests_a_second_are_throttled(fake, kite):
    """Place, modify and cancel count together, per account, over any rolling second; the
    11th gets 429 (the official client's NetworkException), and a refused one does not count."""
    now = [0.0]
    fake.order_rules = OrderRules(clock=lambda: now[0])
    placed = [place(kite) for _ in range(8)]
    kite.modify_order("regular", placed[0], price=1495.0)
    kite.cancel_order("regular", placed[1])
    assert kite.orders()  # reads are not order requests
    for attempt in (place, lambda k: k.cancel_order("regular", placed[2])):
        with pytest.raises(kex.NetworkException, match="Too many requests") as info:
            attempt(kite)
        assert info.value.code == 429
    now[0] = 0.999
    with pytest.raises(kex.NetworkException):
        place(kite)
    now[0] = 1.0  # the first ten are a second old
    place(kite)
    assert fake.order_rules.throttled == 3 and len(set(placed)) == 8


def test_orders_from_an_unregistered_ip_are_refused(fake, kite):
    """Only order requests are checked against the registered static IP; the answer is a 403
    PermissionException whose message says what is wrong."""
    order_id = place(kite)
    fake.order_rules.allow_ips({"203.0.113.7"})  # the tests' requests come from 127.0.0.1
    for request in (
        place,
        lambda k: k.modify_order("regular", order_id, price=1490.0),
        lambda k: k.cancel_order("regular", order_id),
    ):
        with pytest.raises(kex.PermissionException, match=r"not allowed from IP 127\.0") as info:
            request(kite)
        assert info.value.code == 403
    assert kite.orders() and kite.positions() and kite.order_history(order_id)
    assert kite.order_history(order_id)[-1]["status"] == "OPEN"  # nothing happened to it
    fake.order_rules.allow_ips({"203.0.113.7", "127.0.0.1"})
    assert kite.cancel_order("regular", order_id) == order_id
    fake.order_rules.allow_ips(None)
    place(kite)


def test_protected_market_order_can_rest_as_a_limit_at_the_band(fake, kite):
    """On demand, a protected market order fills part and the rest rests as an open LIMIT
    order at the protection band's edge (a buy at most p% above the last price, on the tick),
    where it can still fill or be cancelled like any open order."""
    fake.prices["INFY"] = 1510.5
    fake.order_rules.rest_next(fill_qty=1)
    order_id = place(kite, order_type="MARKET", price=None, quantity=3, market_protection=2)
    resting = kite.order_history(order_id)[-1]
    assert (resting["status"], resting["order_type"], resting["price"]) == ("OPEN", "LIMIT", 1540.7)
    assert (resting["filled_quantity"], resting["pending_quantity"]) == (1, 2)
    assert resting["average_price"] == 1510.5
    assert kite.cancel_order("regular", order_id) == order_id
    last = kite.order_history(order_id)[-1]
    assert (last["status"], last["filled_quantity"], last["cancelled_quantity"]) == (
        "CANCELLED",
        1,
        2,
    )
    fake.order_rules.rest_next(fill_qty=0)  # nothing within the band: all of it rests
    sell = place(
        kite, order_type="MARKET", price=None, transaction_type="SELL", market_protection=-1
    )
    rest = kite.order_history(sell)[-1]
    assert (rest["status"], rest["filled_quantity"], rest["price"]) == ("OPEN", 0, 1495.4)
    assert (
        kite.order_history(place(kite, order_type="MARKET", market_protection=-1))[-1]["status"]
        == "COMPLETE"
    )  # one-shot


def test_stop_market_order_executes_protected_when_triggered(fake, kite):
    fake.prices["INFY"] = 1480.0
    stop = place(kite, order_type="SL-M", price=None, trigger_price=1485.0, market_protection=-1)
    fake.order_rules.rest_next(fill_qty=1)
    fake.call(fake.trigger_order(stop))
    last = kite.order_history(stop)[-1]
    assert (last["status"], last["filled_quantity"], last["order_type"]) == ("OPEN", 1, "LIMIT")
    stop_limit = place(kite, order_type="SL", trigger_price=1485.0)
    fake.call(fake.trigger_order(stop_limit))
    assert kite.order_history(stop_limit)[-1]["status"] == "OPEN"
    with pytest.raises(ValueError, match="not TRIGGER PENDING"):
        fake.call(fake.trigger_order(stop_limit))
