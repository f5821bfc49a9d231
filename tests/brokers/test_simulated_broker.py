"""Execution rules of the simulated broker, and the Zerodha cost model by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brokers.costs import NoCosts, ZerodhaIntradayCosts
from brokers.simulated import SimulatedBroker, round_to_tick
from config.settings import CostSettings
from engine.bus import EventBus
from engine.events import BarSlice, Fill, Order, OrderStatus, OrderType, OrderUpdate, Side

MIN = 60_000_000_000


def bar(t: int, o: float, h: float, lo: float, c: float) -> BarSlice:
    a = lambda x: np.array([x], dtype=float)  # noqa: E731
    return BarSlice(
        t * MIN, t, MIN, np.array([0]), ("X",), a(o), a(h), a(lo), a(c), a(0.0), np.array([False])
    )


def order(
    t: int,
    side: Side,
    kind: OrderType = OrderType.MARKET,
    limit: float = math.nan,
    stop: float = math.nan,
    oid: str = "o1",
) -> Order:
    return Order(t * MIN, 0, oid, "i1", "X", side, 10, kind, limit, stop, OrderStatus.OPEN)


def harness(slippage_bps: float = 0.0):
    bus = EventBus()
    fills: list[Fill] = []
    updates: list[OrderUpdate] = []
    bus.subscribe(Fill, fills.append)
    bus.subscribe(OrderUpdate, updates.append)
    return bus, SimulatedBroker(bus, NoCosts(), slippage_bps, 0.05), fills, updates


async def feed(broker, *bars):
    for b in bars:
        pending = broker.on_bars(b)
        if pending is not None:
            await pending


async def test_market_order_fills_at_next_bar_open_never_the_deciding_bar():
    _bus, broker, fills, _ = harness()
    await broker.submit(order(1, Side.BUY))
    await feed(broker, bar(1, 100, 101, 99, 100.5))  # the deciding bar itself: no fill
    assert fills == []
    await feed(broker, bar(2, 102, 103, 101, 102.5))
    assert [(f.price, f.ts_ns) for f in fills] == [(102.0, 2 * MIN)]


async def test_slippage_is_adverse_and_rounded_to_tick_against_the_trader():
    _, broker, fills, _ = harness(slippage_bps=10)
    await broker.submit(order(1, Side.BUY))
    await broker.submit(order(1, Side.SELL, oid="o2"))
    await feed(broker, bar(2, 100.0, 101, 99, 100))
    prices = {f.side: f.price for f in fills}
    assert prices[Side.BUY] == 100.10  # 100 * 1.001 = 100.1 exactly on tick
    assert prices[Side.SELL] == 99.90
    _bus, broker, fills, _ = harness(slippage_bps=3)
    await broker.submit(order(1, Side.BUY))
    await feed(broker, bar(2, 101.0, 102, 100, 101))
    assert fills[0].price == 101.05  # 101.0303 → up to the next tick


def test_round_to_tick_is_exact_on_grid_prices():
    assert round_to_tick(14016.2, 0.05, Side.BUY) == 14016.2
    assert round_to_tick(14016.2, 0.05, Side.SELL) == 14016.2
    assert round_to_tick(100.01, 0.05, Side.BUY) == 100.05
    assert round_to_tick(100.04, 0.05, Side.SELL) == 100.0


async def test_limit_buy_fills_only_when_traded_through_and_at_open_on_gap():
    _, broker, fills, _ = harness()
    await broker.submit(order(1, Side.BUY, OrderType.LIMIT, limit=98.0))
    await feed(broker, bar(2, 100, 101, 98.5, 100))  # low above limit: no fill
    assert fills == []
    await feed(broker, bar(3, 99, 99.5, 97.0, 98))
    assert fills[0].price == 98.0
    _, broker, fills, _ = harness()
    await broker.submit(order(1, Side.BUY, OrderType.LIMIT, limit=98.0))
    await feed(broker, bar(2, 95, 96, 94, 95))  # gapped below: better price, the open
    assert fills[0].price == 95.0


async def test_stop_orders_trigger_and_fill_at_stop_or_gap_open():
    _, broker, fills, _ = harness()
    await broker.submit(order(1, Side.SELL, OrderType.STOP, stop=95.0))
    await feed(broker, bar(2, 100, 101, 96, 97))
    assert fills == []
    await feed(broker, bar(3, 97, 98, 94, 95))
    assert fills[0].price == 95.0
    _, broker, fills, _ = harness()
    await broker.submit(order(1, Side.BUY, OrderType.STOP, stop=105.0))
    await feed(broker, bar(2, 107, 108, 106, 107))  # gap above the stop: fills at the open
    assert fills[0].price == 107.0


async def test_submit_is_idempotent_and_cancel_reports():
    _, broker, fills, updates = harness()
    o = order(1, Side.BUY)
    await broker.submit(o)
    await broker.submit(o)
    await feed(broker, bar(2, 100, 100, 100, 100))
    assert len(fills) == 1
    await broker.submit(order(2, Side.BUY, OrderType.LIMIT, limit=1.0, oid="o9"))
    await broker.cancel("o9", "changed my mind")
    assert updates[-1].status == OrderStatus.CANCELLED and broker.open_orders() == []


def test_zerodha_costs_by_hand():
    costs = ZerodhaIntradayCosts(CostSettings())
    # buy 100 @ 1000 = 1,00,000 turnover
    brokerage = min(100_000 * 0.0003, 20.0)  # 30 → capped at 20
    txn = 100_000 * 0.0000297
    sebi = 100_000 * 10 / 1e7
    gst = 0.18 * (brokerage + txn + sebi)
    stamp = 100_000 * 0.00003
    assert costs(Side.BUY, 100, 1000.0) == pytest.approx(brokerage + txn + sebi + gst + stamp)
    stt = 100_000 * 0.00025
    assert costs(Side.SELL, 100, 1000.0) == pytest.approx(brokerage + txn + sebi + gst + stt)
    # small order: 0.03% is below ₹20
    small = costs(Side.BUY, 1, 1000.0)
    assert small == pytest.approx(0.3 + 0.0297 + 0.001 + 0.18 * (0.3 + 0.0297 + 0.001) + 0.03)
    custom = ZerodhaIntradayCosts(CostSettings(brokerage_cap=5.0, gst_pct=0.0))
    assert custom(Side.BUY, 100, 1000.0) == pytest.approx(5.0 + txn + sebi + stamp)
