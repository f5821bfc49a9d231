"""``KiteBroker`` under Kite's rules for API orders since 1 April 2026, enforced by the fake:
market protection on MARKET and SL-M orders, a protected market order's resting remainder,
10 order requests per second (and 429s as back-pressure), and the static-IP requirement.

Counts are taken at the fake, so "placed once" means once at Kite.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from brokers.kite.order_api import OrderRateLimit
from engine.events import Fill, OrderStatus, OrderType, OrderUpdate, Side, TradingState
from engine.execution import PendingBook
from tests.support.fake_kite.order_rules import OrderRules
from tests.support.kite_broker import (
    eventually,
    limit_order,
    make_order,
    orders_tagged,
)

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
#: remainders rest this long before the broker acts (it looks at every poll, 0.1 s here)
REMAINDER = {"market_remainder_timeout_s": 0.3}
WAIT = 10.0  # generous: the test machine is shared


def kite_orders(fake: Any, broker: Any, order_id: str, legs: int = 2) -> list[dict[str, Any]]:
    """The Kite orders working for ``order_id``: its own, then its re-placed remainders."""
    tags = [broker.tag_for(order_id)] + [broker.tag_for(f"{order_id}#{n}") for n in range(1, legs)]
    return [order for tag in tags for order in orders_tagged(fake, tag)]


# --- market protection ------------------------------------------------------------------------


async def test_market_and_stop_market_orders_carry_market_protection(fake, events, make_broker):
    """The default setting (-1, Kite's automatic band) goes with MARKET and SL-M orders; LIMIT
    and SL orders carry their own price and none; the fake refuses market orders without it, so
    the fills prove it was accepted."""
    broker = make_broker()
    await broker.start()
    await broker.submit(make_order("m"))
    await broker.submit(make_order("s", kind=OrderType.STOP, stop=1490.0))
    await broker.submit(limit_order("l"))
    await broker.submit(make_order("sl", kind=OrderType.STOP_LIMIT, limit=1490.0, stop=1491.0))
    await broker.wait_idle()
    await eventually(lambda: events.final("m") is not None, WAIT)
    protection = {
        oid: orders_tagged(fake, broker.tag_for(oid))[0]["market_protection"]
        for oid in ("m", "s", "l", "sl")
    }
    assert protection == {"m": -1, "s": -1, "l": 0, "sl": 0}
    assert events.final("m").status == OrderStatus.FILLED and events.final("s") is None

    custom = make_broker({"market_protection": 1.5}, tag_namespace="b")
    await custom.start()
    await custom.submit(make_order("m"))
    await custom.wait_idle()
    assert orders_tagged(fake, custom.tag_for("m"))[0]["market_protection"] == 1.5
    override = make_broker(market_protection=2.5, tag_namespace="c")
    await override.start()
    await override.submit(make_order("m"))
    await override.wait_idle()
    assert orders_tagged(fake, override.tag_for("m"))[0]["market_protection"] == 2.5
    assert broker.errors == custom.errors == override.errors == []


async def test_modifying_an_order_into_a_market_order_sends_protection(fake, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("o1"))
    await eventually(lambda: broker.kite_order_id("o1") is not None, WAIT)
    assert await broker.modify("o1", order_type=OrderType.MARKET)
    last = fake.orders[broker.kite_order_id("o1")][-1]
    assert (last["order_type"], last["market_protection"]) == ("MARKET", -1)


@pytest.mark.parametrize("value", [0, -2, 150])
def test_a_broker_with_invalid_market_protection_is_refused(fake, make_broker, value):
    with pytest.raises(ValueError, match="market_protection must be -1"):
        make_broker(market_protection=value)


# --- the resting remainder of a protected market order ------------------------------------------


async def test_a_resting_remainder_is_cancelled_and_replaced_once(fake, bus, events, make_broker):
    """2 of 5 fill; 3 rest at the protection limit. After the timeout the broker cancels them
    and, trading being ACTIVE, places a new protected market order for 3, which fills: the
    engine sees one order filled in two pieces, and its pending book ends at zero."""
    pending = PendingBook()
    bus.subscribe(OrderUpdate, pending.on_update)
    bus.subscribe(Fill, pending.on_fill)
    broker = make_broker(REMAINDER, poll_interval_s=0.1, trading_state=lambda: ACTIVE)
    await broker.start()
    fake.order_rules.rest_next(fill_qty=2)
    order = make_order("o1", qty=5)
    pending.add(order)
    await broker.submit(order)
    await eventually(lambda: events.final("o1") is not None, WAIT)
    await broker.wait_idle()

    first, second = kite_orders(fake, broker, "o1")
    assert (first["status"], first["filled_quantity"], first["cancelled_quantity"]) == (
        "CANCELLED",
        2,
        3,
    )
    assert (second["order_type"], second["quantity"], second["market_protection"]) == (
        "MARKET",
        3,
        -1,
    )
    assert second["status"] == "COMPLETE" and second["transaction_type"] == "BUY"
    assert fake.count("order.place") == 2 and fake.count("order.cancel") == 1
    assert [(f.qty, f.price) for f in events.fills("o1")] == [(2, 1510.5), (3, 1510.5)]
    final = events.final("o1")
    assert (final.status, final.filled_qty) == (OrderStatus.FILLED, 5)
    updates = [(u.status, u.filled_qty) for u in events.updates("o1")]
    assert updates[-2:] == [(OrderStatus.OPEN, 2), (OrderStatus.FILLED, 5)]
    assert set(updates[:-1]) <= {(OrderStatus.OPEN, 0), (OrderStatus.OPEN, 2)}  # never CANCELLED
    (note,) = events.broker_events("market_remainder")
    assert not note.halts and "re-placing" in note.message and "remaining 3" in note.message
    # fill, note, fill, final: in the order they happened
    first_fill, second_fill = events.fills("o1")
    positions = [events.all.index(e) for e in (first_fill, note, second_fill, final)]
    assert positions == sorted(positions)
    assert pending.pending("INFY") == 0 and broker.open_orders() == [] and broker.errors == []


async def test_a_stop_market_remainder_is_replaced_as_a_market_order(fake, events, make_broker):
    broker = make_broker(REMAINDER, poll_interval_s=0.1, trading_state=lambda: ACTIVE)
    await broker.start()
    await broker.submit(make_order("o1", side=Side.SELL, qty=4, kind=OrderType.STOP, stop=1500))
    await eventually(lambda: broker.kite_order_id("o1") is not None, WAIT)
    fake.order_rules.rest_next(fill_qty=1)
    await fake.trigger_order(broker.kite_order_id("o1"))  # the stop is hit; 1 of 4 fills
    await eventually(lambda: events.final("o1") is not None, WAIT)
    first, second = kite_orders(fake, broker, "o1")
    assert (first["order_type"], first["status"], first["filled_quantity"]) == (
        "LIMIT",  # Kite turned it into a limit at the protection band's edge
        "CANCELLED",
        1,
    )
    assert (second["order_type"], second["quantity"], second["trigger_price"]) == ("MARKET", 3, 0)
    assert second["market_protection"] == -1 and second["transaction_type"] == "SELL"
    assert events.final("o1")[4:6] == (OrderStatus.FILLED, 4)


async def test_a_remainder_that_rests_again_is_given_up(fake, bus, events, make_broker):
    """Re-placed once already: the second remainder is cancelled and the order ends CANCELLED
    with what filled, so the engine's pending book drops the rest."""
    pending = PendingBook()
    bus.subscribe(OrderUpdate, pending.on_update)
    bus.subscribe(Fill, pending.on_fill)
    broker = make_broker(REMAINDER, poll_interval_s=0.1, trading_state=lambda: ACTIVE)
    await broker.start()
    fake.order_rules.rest_next(fill_qty=2)
    fake.order_rules.rest_next(fill_qty=1)
    order = make_order("o1", qty=5)
    pending.add(order)
    await broker.submit(order)
    await eventually(lambda: events.final("o1") is not None, WAIT)
    await broker.wait_idle()

    final = events.final("o1")
    assert (final.status, final.filled_qty) == (OrderStatus.CANCELLED, 3)
    assert "not re-placed" in final.reason and "market_remainder_replacements=1" in final.reason
    assert sum(f.qty for f in events.fills("o1")) == 3
    assert [o["status"] for o in kite_orders(fake, broker, "o1", legs=3)] == [
        "CANCELLED",
        "CANCELLED",
    ]
    assert fake.count("order.place") == 2 and fake.count("order.cancel") == 2
    replaced, gave_up = events.broker_events("market_remainder")
    assert "re-placing" in replaced.message and "not re-placed" in gave_up.message
    assert pending.pending("INFY") == 0 and broker.open_orders() == []


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (HALTED, "trading is HALTED"),
        (None, "no trading state"),
    ],
)
async def test_no_remainder_is_replaced_unless_trading_allows(
    fake, events, make_broker, state, why
):
    broker = make_broker(
        REMAINDER,
        poll_interval_s=0.1,
        trading_state=(lambda: state) if state is not None else None,
    )
    await broker.start()
    fake.order_rules.rest_next(fill_qty=2)
    await broker.submit(make_order("o1", qty=5))
    await eventually(lambda: events.final("o1") is not None, WAIT)
    final = events.final("o1")
    assert (final.status, final.filled_qty) == (OrderStatus.CANCELLED, 2) and why in final.reason
    assert fake.count("order.place") == 1 and events.broker_events("network") == []


@pytest.mark.parametrize(
    ("side", "held", "replaced"),
    [
        (Side.SELL, 3, True),  # selling 3 of a long 3 reduces it
        (Side.SELL, 2, False),  # selling 3 of a long 2 would go short
        (Side.BUY, 3, False),  # buying adds to a long
    ],
)
async def test_while_reducing_only_a_remainder_that_reduces_is_replaced(
    fake, events, make_broker, side, held, replaced
):
    """REDUCING allows what the risk chain's trading-state gate allows: orders that reduce the
    position — judged on the account's position at Kite at that moment."""
    broker = make_broker(REMAINDER, poll_interval_s=0.1, trading_state=lambda: REDUCING)
    await broker.start()
    fake.order_rules.rest_next(fill_qty=2)
    await broker.submit(make_order("o1", side=side, qty=5))
    await eventually(lambda: broker.kite_order_id("o1") is not None, WAIT)
    fake.set_position("INFY", held)  # what the account holds after the partial fill
    await eventually(lambda: events.final("o1") is not None, WAIT)
    final = events.final("o1")
    if replaced:
        assert final[4:6] == (OrderStatus.FILLED, 5) and fake.count("order.place") == 2
    else:
        assert final[4:6] == (OrderStatus.CANCELLED, 2) and fake.count("order.place") == 1
        assert f"would not reduce the account's INFY position (+{held})" in final.reason


async def test_an_engine_cancel_of_a_resting_remainder_is_not_replaced(fake, events, make_broker):
    broker = make_broker({"market_remainder_timeout_s": 30.0}, trading_state=lambda: ACTIVE)
    await broker.start()
    fake.order_rules.rest_next(fill_qty=2)
    await broker.submit(make_order("o1", qty=5))
    await eventually(lambda: events.updates("o1") and events.updates("o1")[-1][5] == 2, WAIT)
    await broker.cancel("o1", "square-off")
    await eventually(lambda: events.final("o1") is not None, WAIT)
    assert events.final("o1")[4:] == (OrderStatus.CANCELLED, 2, "square-off")
    assert fake.count("order.place") == 1 and events.broker_events("market_remainder") == []


async def test_a_replaced_remainder_is_not_placed_again_after_a_restart(fake, events, make_broker):
    """The first broker re-places the remainder, which rests in full; it stops (a crash, say).
    The next one finds the remainder in the day's order book by its own tag: the re-submitted
    order binds to what is there and nothing is placed again."""
    first = make_broker(
        REMAINDER, poll_interval_s=0.1, trading_state=lambda: ACTIVE, tag_namespace="run-1"
    )
    await first.start()
    fake.order_rules.rest_next(fill_qty=2)
    fake.order_rules.rest_next(fill_qty=0)
    await first.submit(make_order("o1", qty=5))
    await eventually(lambda: len(kite_orders(fake, first, "o1")) == 2, WAIT)
    await first.stop()
    placed = fake.count("order.place")
    remainder = kite_orders(fake, first, "o1")[1]
    assert remainder["status"] == "OPEN" and remainder["pending_quantity"] == 3

    second = make_broker(
        {"market_remainder_timeout_s": 30.0},
        trading_state=lambda: ACTIVE,
        tag_namespace="run-1",
    )
    await second.start()
    await second.submit(make_order("o1", qty=5))
    await second.wait_idle()
    assert fake.count("order.place") == placed
    adopted = [o.order_id for o in second.open_orders()]
    assert adopted == [f"kite-{remainder['order_id']}"]  # the remainder, still working


# --- 10 order requests per second, and 429 --------------------------------------------------------


async def test_place_modify_and_cancel_share_the_order_rate(fake, make_broker):
    """Ten placements fill the second; a cancel right after waits for the window to move
    instead of being refused: the fake, counting arrivals, never answers 429."""
    broker = make_broker()
    await broker.start()
    started = time.monotonic()
    for n in range(10):
        await broker.submit(limit_order(f"o{n}"))
    await broker.wait_idle()
    await broker.cancel("o0", "change of mind")
    assert time.monotonic() - started >= 1.0
    assert fake.count("order.cancel") == 1 and fake.order_rules.throttled == 0
    assert orders_tagged(fake, broker.tag_for("o0"))[0]["status"] == "CANCELLED"


async def test_a_429_is_back_pressure_not_a_failure(fake, events, make_broker):
    """Kite's 429 means it took nothing: the same order is sent again after a pause, never a
    second one, and nothing halts."""
    broker = make_broker()
    await broker.start()
    fake.inject("order.place", status=429, message="Too many requests", times=2)
    await broker.submit(make_order("o1"))
    await broker.wait_idle()
    await eventually(lambda: events.final("o1") is not None, WAIT)
    assert fake.count("order.place") == 3 and len(orders_tagged(fake, broker.tag_for("o1"))) == 1
    assert events.final("o1").status == OrderStatus.FILLED
    assert [e.kind for e in events.broker_events()] == ["reconciled"]


async def test_a_burst_beyond_kites_limit_is_queued_until_kite_takes_it(fake, events, make_broker):
    """A broker allowed to burst (as if another program shared the account) meets the fake's
    limit: the requests refused with 429 wait and go again, each order reaching Kite once."""
    now = [0.0]
    fake.order_rules = OrderRules(clock=lambda: now[0])
    broker = make_broker(
        {"backoff_base_s": 0.05, "backoff_max_s": 0.1, "max_retries": 20},
        order_rate_limit=OrderRateLimit(per_second=100, per_minute=1000),
    )
    await broker.start()
    for n in range(15):
        await broker.submit(make_order(f"o{n}"))
    await eventually(lambda: fake.order_rules.throttled >= 5, WAIT)
    now[0] = 1.0  # Kite's second moves on
    await broker.wait_idle()
    await eventually(lambda: all(events.final(f"o{n}") for n in range(15)), WAIT)
    assert all(len(orders_tagged(fake, broker.tag_for(f"o{n}"))) == 1 for n in range(15))
    assert fake.count("order.place") == 15 + fake.order_rules.throttled
    assert {events.final(f"o{n}").status for n in range(15)} == {OrderStatus.FILLED}
    assert [e.kind for e in events.broker_events()] == ["reconciled"]


# --- static IP ----------------------------------------------------------------------------------


async def test_an_unregistered_ip_halts_trading_and_is_not_retried(fake, events, make_broker):
    """Each order request refused for the IP: the order is REJECTED, a halting event says
    where to register the IP, and nothing is retried. Once the IP is registered, orders go."""
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("open"))
    await eventually(lambda: broker.kite_order_id("open") is not None, WAIT)
    fake.order_rules.allow_ips({"203.0.113.7"})
    await broker.submit(make_order("o1"))
    await broker.wait_idle()

    final = events.final("o1")
    assert final.status == OrderStatus.REJECTED and "IP Whitelist" in final.reason
    (halt,) = events.broker_events("ip_not_allowed")
    assert halt.halts and halt.message.startswith("order o1: ")
    assert "developers.kite.trade" in halt.message and "127.0.0.1" in halt.message
    assert events.all.index(halt) < events.all.index(final)  # halted before the news spreads
    assert fake.count("order.place") == 2  # "open", and o1 once: no retry loop
    assert events.broker_events("network") == [] and broker.halted is None

    await broker.cancel("open", "flatten")  # a cancel is an order request too
    await broker.wait_idle()
    assert len(events.broker_events("ip_not_allowed")) == 2
    assert [o.order_id for o in broker.open_orders()] == ["open"]  # still open at Kite

    fake.order_rules.allow_ips({"203.0.113.7", "127.0.0.1"})  # the operator registered it
    await broker.submit(make_order("o2"))
    await eventually(lambda: events.final("o2") is not None, WAIT)
    assert events.final("o2").status == OrderStatus.FILLED
    assert broker.errors == []
