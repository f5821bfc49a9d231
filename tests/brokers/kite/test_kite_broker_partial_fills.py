"""An order filled in pieces: Zerodha's ₹20 brokerage cap is charged once per executed order,
not per piece; and a restored, partly filled order is not reported (or charged) again for the
part the engine booked before the restart."""

from __future__ import annotations

from brokers.costs import OrderCosts
from engine.events import Fill, OrderType, Side
from tests.support.kite_broker import COSTS, eventually, make_order

QTY, PRICE = 200, 1510.5  # ₹3,02,100: 0.03% is ₹90.63, so the ₹20 cap binds, half or whole
WAIT = 10.0


def fills_of(events, order_id):
    return [e for e in events.all if isinstance(e, Fill) and e.order_id == order_id]


def test_order_costs_charge_the_cap_once_per_order():
    costs = OrderCosts(COSTS)
    whole = COSTS(Side.BUY, QTY, PRICE)
    pieces = [costs("o1", Side.BUY, 100, PRICE), costs("o1", Side.BUY, 100, PRICE)]
    assert sum(pieces) == whole
    assert COSTS(Side.BUY, 100, PRICE) * 2 - whole > 20 * 1.18 - 1e-9  # ₹20 + GST saved
    assert costs("o2", Side.BUY, 100, PRICE) == COSTS(Side.BUY, 100, PRICE)  # its own order


async def test_two_partial_fills_of_one_order_pay_brokerage_once(fake, events, make_broker):
    broker = make_broker()
    await broker.start()
    order = make_order("o1", qty=QTY, kind=OrderType.LIMIT, limit=PRICE)
    await broker.submit(order)
    await eventually(lambda: broker.kite_order_id("o1") is not None, WAIT)
    kite_id = broker.kite_order_id("o1")
    await fake.fill_order(kite_id, PRICE, qty=100)
    await eventually(lambda: len(fills_of(events, "o1")) == 1, WAIT)
    await fake.fill_order(kite_id, PRICE, qty=100)
    await eventually(lambda: len(fills_of(events, "o1")) == 2, WAIT)
    first, second = fills_of(events, "o1")
    assert first.costs == COSTS(Side.BUY, 100, PRICE)  # alone so far: charged as such
    assert first.costs + second.costs == COSTS(Side.BUY, QTY, PRICE)
    assert second.costs < first.costs  # the second piece pays no brokerage past the cap


async def test_a_restored_partly_filled_order_reports_only_the_rest(fake, events, make_broker):
    before = make_broker(tag_namespace="run1")
    await before.start()
    order = make_order("o1", qty=QTY, kind=OrderType.LIMIT, limit=PRICE)
    await before.submit(order)
    await eventually(lambda: before.kite_order_id("o1") is not None, WAIT)
    kite_id = before.kite_order_id("o1")
    await fake.fill_order(kite_id, PRICE, qty=100)
    await eventually(lambda: len(fills_of(events, "o1")) == 1, WAIT)
    (booked,) = fills_of(events, "o1")
    await before.stop()  # the crash, as far as the broker can tell
    events.all.clear()

    after = make_broker(tag_namespace="run1")
    await after.submit(order)  # engine/restore.py: the open order goes back to the broker ...
    after.booked("o1", booked.qty, booked.qty * booked.price, booked.costs)  # ... with its fills
    await after.start()
    await after.wait_idle()
    assert fills_of(events, "o1") == []  # the booked 100 are not reported again
    await fake.fill_order(kite_id, PRICE, qty=100)
    await eventually(lambda: len(fills_of(events, "o1")) == 1, WAIT)
    (rest,) = fills_of(events, "o1")
    assert rest.qty == 100
    assert booked.costs + rest.costs == COSTS(Side.BUY, QTY, PRICE)
    assert fake.count("order.place") == 1  # never placed twice
