"""``KiteBroker`` against the local fake Kite: orders placed through the official client, updates
from the fake's websocket and order book, faults injected at the fake. Everything is offline.

Counts are taken at the fake (requests received, orders in its book), not from the broker's own
bookkeeping, so "placed once" means once at Kite.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from brokers.kite.order_tags import order_tag
from engine.events import (
    OrderStatus,
    OrderType,
    Side,
)
from tests.support.kite_broker import (
    COSTS,
    eventually,
    limit_order,
    make_order,
    orders_tagged,
    place_with_tag,
)


async def test_market_order_fill_is_reported_once(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    assert broker.ticker is not None and broker.ticker.connected.is_set()
    await broker.submit(make_order("o1"))
    await broker.submit(make_order("o1"))  # idempotent on order_id
    await eventually(lambda: events.final("o1") is not None)
    await broker.wait_idle()
    kite_id = broker.kite_order_id("o1")
    assert kite_id is not None
    # the same state again, by every path: websocket replay and polls
    await fake.ticker.send_order_update(fake.orders[kite_id][-1])
    await broker.poll_once()
    await asyncio.sleep(0.3)  # a background poll too
    await broker.wait_idle()

    assert fake.count("order.place") == 1
    (fill,) = events.fills("o1")
    assert (fill.symbol, fill.side, fill.qty, fill.price) == ("INFY", Side.BUY, 2, 1510.5)
    assert fill.costs == pytest.approx(COSTS(Side.BUY, 2, 1510.5)) and fill.costs > 0
    assert fill.trade_id == f"T{kite_id}"
    final = events.final("o1")
    assert final is not None and (final.status, final.filled_qty) == (OrderStatus.FILLED, 2)
    assert events.all.index(fill) < events.all.index(final)  # fills before the finishing update
    assert broker.open_orders() == [] and broker.errors == []
    assert orders_tagged(fake, broker.tag_for("o1"))[0]["product"] == "MIS"


async def test_partial_fills_via_websocket_and_poll_never_double_count(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("o1", qty=5))
    await eventually(lambda: broker.kite_order_id("o1") is not None)
    await broker.wait_idle()
    kite_id = broker.kite_order_id("o1")
    assert [(u.status, u.filled_qty) for u in events.updates("o1")] == [(OrderStatus.OPEN, 0)]

    await fake.fill_order(kite_id, 1499.0, qty=2)
    await eventually(lambda: len(events.fills("o1")) == 1)
    await broker.poll_once()  # the order book says the same: nothing new
    await fake.ticker.send_order_update(fake.orders[kite_id][-1])  # a repeated update
    await asyncio.sleep(0.05)
    await broker.wait_idle()
    assert [(f.qty, f.price) for f in events.fills("o1")] == [(2, 1499.0)]
    assert events.updates("o1")[-1][4:6] == (OrderStatus.OPEN, 2)  # partial: still OPEN
    assert broker.open_orders()[0].order_id == "o1"

    await fake.fill_order(kite_id, 1498.0)
    await eventually(lambda: events.final("o1") is not None)
    await broker.poll_once()
    await fake.ticker.send_order_update(fake.orders[kite_id][-1])
    await asyncio.sleep(0.05)
    await broker.wait_idle()
    fills = events.fills("o1")
    assert [(f.qty, f.price, f.trade_id) for f in fills] == [
        (2, 1499.0, f"T{kite_id}"),
        (3, 1498.0, f"T{kite_id}-2"),
    ]
    assert events.final("o1")[4:6] == (OrderStatus.FILLED, 5)
    assert broker.open_orders() == []


async def test_polling_alone_reports_fills_and_absorbs_late_trades(fake, events, make_broker):
    """No websocket; the trade book is unavailable at the first fill, so that fill is reported
    from the order book and its trade, seen later, is not reported again."""
    broker = make_broker(run_ticker=False, poll_interval_s=0.05)
    await broker.start()
    await broker.submit(limit_order("o1", qty=5))
    await eventually(lambda: broker.kite_order_id("o1") is not None)
    kite_id = broker.kite_order_id("o1")
    fake.inject("order.trades", status=500)
    await fake.fill_order(kite_id, 1499.0, qty=2)
    await eventually(lambda: len(events.fills("o1")) == 1)
    await fake.fill_order(kite_id, 1497.0)
    await eventually(lambda: events.final("o1") is not None)
    fills = events.fills("o1")
    assert [(f.qty, f.price, f.trade_id) for f in fills] == [
        (2, 1499.0, ""),
        (3, 1497.0, f"T{kite_id}-2"),
    ]
    assert sum(f.qty * f.price for f in fills) / 5 == pytest.approx((2 * 1499 + 3 * 1497) / 5)


async def test_timeout_after_placement_retries_without_placing_twice(fake, events, make_broker):
    """The fake places the order, then answers after the client has given up: the broker finds
    the order by its tag instead of placing it again. (No websocket, so only the tag search can
    tell the broker the order exists.)"""
    broker = make_broker({"request_timeout_s": 0.3}, run_ticker=False)
    await broker.start()
    fake.inject("order.place", answer_delay_s=1.0)
    await broker.submit(make_order("o1"))
    await broker.wait_idle()

    assert fake.count("order.place") == 1
    assert len(orders_tagged(fake, broker.tag_for("o1"))) == 1
    assert len(events.fills("o1")) == 1 and events.final("o1").status == OrderStatus.FILLED
    assert events.broker_events() == [events.broker_events("reconciled")[0]]


async def test_connection_cut_before_placement_is_retried_once(fake, events, make_broker):
    broker = make_broker(run_ticker=False)
    await broker.start()
    fake.inject("order.place", disconnect=True)
    await broker.submit(make_order("o1"))
    await broker.wait_idle()
    assert fake.count("order.place") == 2  # the cut one, then the real one
    assert len(orders_tagged(fake, broker.tag_for("o1"))) == 1
    await eventually(lambda: events.final("o1") is not None)  # no websocket: the poll tells
    assert len(events.fills("o1")) == 1


async def test_rms_rejection_becomes_rejected_update(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    fake.reject_orders()  # accepted, then rejected by RMS
    await broker.submit(limit_order("o1"))
    fake.reject_orders("Markets are closed right now.", at_placement=True)
    await broker.wait_idle()
    await broker.submit(limit_order("o2"))
    await eventually(lambda: events.final("o1") is not None and events.final("o2") is not None)

    first, second = events.final("o1"), events.final("o2")
    assert first.status == OrderStatus.REJECTED and first.reason.startswith("RMS:Margin Exceeds")
    assert second.status == OrderStatus.REJECTED
    assert second.reason == "Markets are closed right now."
    assert events.fills() == [] and broker.open_orders() == [] and broker.errors == []
    assert events.broker_events("token_expired") == events.broker_events("network") == []


async def test_bad_orders_are_rejected_before_reaching_kite(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(make_order("o1", symbol="NOSUCH"))
    await broker.submit(make_order("o2", kind=OrderType.LIMIT))  # no limit price
    await broker.submit(make_order("o3", qty=0))
    await broker.wait_idle()
    reasons = {oid: events.final(oid).reason for oid in ("o1", "o2", "o3")}
    assert "'NOSUCH' is not an NSE instrument" in reasons["o1"]
    assert "limit_price" in reasons["o2"] and "quantity" in reasons["o3"]
    assert fake.count("order.place") == 0


async def test_token_expiry_halts_once_and_refuses_orders(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("o1"))
    await broker.wait_idle()
    fake.expire_token()
    await broker.submit(limit_order("o2"))
    await broker.wait_idle()
    await broker.submit(limit_order("o3"))
    await broker.poll_once()
    await asyncio.sleep(0.3)  # the poll loop must not spam events either
    await broker.wait_idle()

    (expired,) = events.broker_events("token_expired")
    assert expired.halts and "trader kite login" in expired.message
    assert "fake_access_token" not in expired.message
    assert events.final("o2").status == OrderStatus.REJECTED
    assert "access token" in events.final("o3").reason
    assert broker.halted is not None
    assert [o.order_id for o in broker.open_orders()] == ["o1"]  # still open at Kite


async def test_expired_token_at_start_is_an_event_not_a_crash(fake, events, make_broker):
    fake.expire_token()
    broker = make_broker()
    await broker.start()
    (expired,) = events.broker_events("token_expired")
    assert expired.halts
    await broker.submit(make_order("o1"))
    await broker.wait_idle()
    assert events.final("o1").status == OrderStatus.REJECTED
    assert fake.count("order.place") == 0


async def test_cancel_open_limit_order(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("o1"))
    await eventually(lambda: broker.kite_order_id("o1") is not None)
    await broker.wait_idle()
    await broker.cancel("o1", "strategy exit")
    await broker.wait_idle()
    final = events.final("o1")
    assert final is not None and (final.status, final.reason) == (
        OrderStatus.CANCELLED,
        "strategy exit",
    )
    assert fake.orders[broker.kite_order_id("o1")][-1]["status"] == "CANCELLED"
    assert broker.open_orders() == []
    await broker.cancel("o1")  # finished: ignored
    await broker.cancel("unknown")
    assert fake.count("order.cancel") == 1
    assert len([u for u in events.updates("o1") if u.status == OrderStatus.CANCELLED]) == 1


async def test_cancel_while_placing_is_sent_once_placed(fake, events, make_broker):
    """Square-off may cancel an order whose placement has not been answered yet (no websocket
    here, which would otherwise tell the broker the Kite order id before the answer)."""
    broker = make_broker(run_ticker=False)
    await broker.start()
    fake.inject("order.place", answer_delay_s=0.3)
    await broker.submit(limit_order("o1"))
    await asyncio.sleep(0.05)
    await broker.cancel("o1", "square-off")
    assert fake.count("order.cancel") == 0  # nothing to cancel at Kite yet
    await eventually(lambda: events.final("o1") is not None)
    await broker.wait_idle()
    assert events.final("o1")[4:] == (OrderStatus.CANCELLED, 0, "square-off")
    assert fake.count("order.place") == fake.count("order.cancel") == 1


async def test_modify_open_order(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    await broker.submit(limit_order("o1", price=1500.0))
    await eventually(lambda: broker.kite_order_id("o1") is not None)
    assert await broker.modify("o1", limit_price=1490.03)
    last = fake.orders[broker.kite_order_id("o1")][-1]
    assert (last["price"], last["modified"]) == (1490.0, True)  # buy limit: down to the tick
    assert broker.open_orders()[0].limit_price == 1490.03


async def test_start_reconciles_open_orders_and_positions(fake, events, make_broker):
    """A previous process placed o7 (still open) and o8 (filled); someone placed an order by
    hand. At start the broker adopts o7, reports positions, and a re-submitted o7 binds to the
    existing Kite order instead of being placed again."""
    open_id = await asyncio.to_thread(place_with_tag, fake, order_tag("o7", "run-1"))
    await asyncio.to_thread(
        place_with_tag,
        fake,
        order_tag("o8", "run-1"),
        order_type="MARKET",
        price=None,
        market_protection=-1,
    )
    await asyncio.to_thread(place_with_tag, fake, "manual")
    fake.set_position("INFY", 5)
    fake.set_position("SBIN", -3)
    fake.set_position("TCS", 10, product="CNC")  # another product: not ours to compare
    placed_before = fake.count("order.place")

    broker = make_broker(tag_namespace="run-1")
    await broker.start()
    (summary,) = events.broker_events("reconciled")
    assert not summary.halts
    assert "2 order(s) with our tag" in summary.message and "1 open adopted" in summary.message
    assert "INFY +5" in summary.message
    assert broker.account_positions() == {"INFY": 5, "SBIN": -3}
    (adopted,) = broker.open_orders()
    assert adopted.order_id == f"kite-{open_id}"
    assert (adopted.symbol, adopted.side, adopted.qty, adopted.order_type, adopted.limit_price) == (
        "INFY",
        Side.SELL,
        4,
        OrderType.LIMIT,
        1600.0,
    )

    restored = make_order("o7", side=Side.SELL, qty=4, kind=OrderType.LIMIT, limit=1600.0)
    await broker.submit(restored)
    await broker.wait_idle()
    assert [o.order_id for o in broker.open_orders()] == ["o7"]
    await fake.fill_order(open_id, 1601.0)
    await eventually(lambda: events.final("o7") is not None)
    assert [(f.order_id, f.qty, f.price) for f in events.fills()] == [("o7", 4, 1601.0)]
    assert fake.count("order.place") == placed_before  # nothing placed again


async def test_orders_resubmitted_before_start_bind_to_their_kite_orders(fake, events, make_broker):
    """Restore re-submits open orders; if that happens before start(), placement waits for the
    day's order book. o7 is found there (it filled while we were down: its fill is reported);
    o9 is new and placed."""
    filled_id = await asyncio.to_thread(
        place_with_tag,
        fake,
        order_tag("o7", "run-1"),
        order_type="MARKET",
        price=None,
        market_protection=-1,
    )
    placed_before = fake.count("order.place")
    broker = make_broker(tag_namespace="run-1")
    await broker.submit(make_order("o7", side=Side.SELL, qty=4))
    await broker.submit(make_order("o9"))
    await broker.start()
    await broker.wait_idle()
    await eventually(lambda: events.final("o9") is not None)
    assert fake.count("order.place") == placed_before + 1
    assert broker.kite_order_id("o7") == filled_id
    assert sorted((f.order_id, f.qty) for f in events.fills()) == [("o7", 4), ("o9", 2)]
    assert "1 matched to re-submitted" in events.broker_events("reconciled")[0].message


async def test_order_rate_limit_is_respected(fake, events, make_broker):
    """Kite allows 10 orders a second: the 11th and 12th wait for the window to move."""
    broker = make_broker()
    await broker.start()
    started = time.monotonic()
    for n in range(12):
        await broker.submit(make_order(f"o{n}"))
    assert time.monotonic() - started < 0.5  # submit never waits for the network
    await broker.wait_idle()
    elapsed = time.monotonic() - started
    assert fake.count("order.place") == 12
    assert elapsed >= 1.0
    await eventually(lambda: len(events.fills()) == 12)


async def test_persistent_network_failure_halts_then_settles(fake, events, make_broker):
    """Every placement attempt is cut: after the retries the broker halts trading with a
    "network" event and keeps the order as unconfirmed; once the order book is readable and
    shows no such order, the order is reported REJECTED."""
    broker = make_broker({"request_timeout_s": 0.1, "max_retries": 2}, run_ticker=False)
    await broker.start()
    fake.inject("order.place", disconnect=True, times=None)
    await broker.submit(make_order("o1"))
    await broker.wait_idle()
    (network,) = events.broker_events("network")
    assert network.halts and "o1" in network.message
    assert [o.order_id for o in broker.open_orders()] == ["o1"]  # outcome unknown yet
    fake.clear_faults()
    await eventually(lambda: events.final("o1") is not None)
    final = events.final("o1")
    assert final.status == OrderStatus.REJECTED and "no order with tag" in final.reason
    assert fake.count("order.place") == 3 and orders_tagged(fake, broker.tag_for("o1")) == []
