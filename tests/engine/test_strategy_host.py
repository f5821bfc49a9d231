"""Direct tests of the strategy host (engine/strategy_host.py).

The host is a strategy's only window onto the engine. Promises under test, from its docstrings:
intents are published once the handler has returned (never interleaved with it), in emission
order, with ids derived from the bar and the order within it (so a resumed run reproduces
them); ``target`` orders the difference to position + pending; during warm-up intents are
discarded; only the strategy's own fills are forwarded, including fills of orders restored
after a restart.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from engine.bus import EventBus
from engine.events import (
    BarSlice,
    FeatureSlice,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
)
from engine.execution import ExecutionStage, PendingBook
from engine.ports import Broker
from engine.strategy_host import StrategyHost
from risk.chain import RiskChain
from risk.state import TradingStateMachine
from strategies.base import Strategy, StrategyContext

MIN = 60_000_000_000
T0 = 1_704_167_100_000_000_000  # 2024-01-02 09:15 IST
T1, T2 = T0 + MIN, T0 + 2 * MIN

Action = Callable[[StrategyContext], None]


class Scripted(Strategy):
    """Does what the test tells it on each handler, and remembers what it was given."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.on_bar: Action = lambda ctx: None
        self.on_feature: Action = lambda ctx: None
        self.on_filled: Action = lambda ctx: None
        self.fills: list[Fill] = []
        self.started_with: StrategyContext | None = None

    def on_start(self, ctx: StrategyContext) -> None:
        self.started_with = ctx

    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None:
        self.on_bar(ctx)

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None:
        self.on_feature(ctx)

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        self.fills.append(fill)
        self.on_filled(ctx)


class Positions:
    def __init__(self) -> None:
        self.held: dict[str, int] = {}
        self.by_sid = np.array([3, 0, -2], dtype=np.int64)

    def qty(self, symbol: str) -> int:
        return self.held.get(symbol, 0)

    def qty_by_sid(self) -> np.ndarray:
        return self.by_sid

    equity = 1_000_000.0


class Pending:
    def __init__(self) -> None:
        self.by_symbol: dict[str, int] = {}

    def pending(self, symbol: str) -> int:
        return self.by_symbol.get(symbol, 0)


def bars_at(ts_ns: int) -> BarSlice:
    a = np.array([100.0])
    return BarSlice(ts_ns, 0, MIN, np.array([0]), ("X",), a, a, a, a, a, np.array([False]))


def features_at(ts_ns: int) -> FeatureSlice:
    return FeatureSlice(
        ts_ns, 0, np.array([0]), ("X",), np.zeros((1, 2), np.float32), np.array([True]), "h"
    )


def order_for(intent_id: str, order_id: str, symbol: str = "X") -> Order:
    nan = math.nan
    return Order(
        T0, 0, order_id, intent_id, symbol, Side.BUY, 5, OrderType.MARKET, nan, nan,
        OrderStatus.OPEN,
    )  # fmt: skip


def fill_of(order_id: str, ts_ns: int = T2, qty: int = 5) -> Fill:
    return Fill(ts_ns, 0, order_id, "X", Side.BUY, qty, 100.0, 0.0)


class Rig:
    """A host on a real bus, wired as the pipeline wires it; intents are captured."""

    def __init__(self, strategy: Scripted | None = None) -> None:
        self.bus = EventBus()
        self.strategy = strategy or Scripted()
        self.positions = Positions()
        self.pending = Pending()
        self.host = StrategyHost(self.bus, self.strategy, self.positions, self.pending)
        self.intents: list[OrderIntent] = []
        self.bus.subscribe(BarSlice, self.host.on_bars)
        self.bus.subscribe(FeatureSlice, self.host.on_features)
        self.bus.subscribe(OrderIntent, self.intents.append)
        self.bus.subscribe(Order, self.host.on_order)
        self.bus.subscribe(Fill, self.host.on_fill)

    def ids(self) -> list[str]:
        return [i.intent_id for i in self.intents]


# ---- publishing -----------------------------------------------------------------------------


async def test_intents_are_published_only_after_the_handler_returns_in_order() -> None:
    """Inside the handler nothing has been published yet (the strategy cannot interleave with
    its own orders); afterwards both intents are out, in emission order, with bus seqs."""
    rig = Rig()
    seen_inside: list[int] = []

    def act(ctx: StrategyContext) -> None:
        ctx.submit("X", Side.BUY, 5, reason="first")
        seen_inside.append(len(rig.intents))
        ctx.submit("Y", Side.SELL, 2, OrderType.LIMIT, limit_price=99.5, reason="second")
        seen_inside.append(len(rig.intents))

    rig.strategy.on_bar = act
    await rig.bus.publish(bars_at(T0))
    assert seen_inside == [0, 0]
    first, second = rig.intents
    assert 0 < first.seq < second.seq  # stamped at publish, not the 0 placeholder
    assert math.isnan(first.limit_price) and math.isnan(first.stop_price)  # NaN != NaN
    assert first._replace(seq=0, limit_price=0.0, stop_price=0.0) == OrderIntent(
        T0, 0, f"scripted-{T0}-1", "scripted", "X", Side.BUY, 5, OrderType.MARKET, 0.0, 0.0, "first"
    )
    assert (second.symbol, second.side, second.qty, second.order_type, second.limit_price) == (
        "Y", Side.SELL, 2, OrderType.LIMIT, 99.5
    )  # fmt: skip
    assert math.isnan(second.stop_price) and second.reason == "second"


async def test_a_handler_that_emits_nothing_publishes_nothing() -> None:
    rig = Rig()
    assert rig.host.on_bars(bars_at(T0)) is None  # the hot path: no coroutine at all
    assert rig.intents == []


async def test_feature_and_fill_handlers_publish_their_intents_too() -> None:
    rig = Rig()
    rig.strategy.on_feature = lambda ctx: ctx.submit("X", Side.BUY, 1, reason="feat")
    await rig.bus.publish(features_at(T1))
    assert [(i.ts_ns, i.reason) for i in rig.intents] == [(T1, "feat")]


# ---- ids ------------------------------------------------------------------------------------


async def test_ids_are_name_ts_n_and_the_count_restarts_each_timestamp() -> None:
    """Two intents at T0, one at T1, then a fill handler at T1 continues T1's count (ids stay
    unique within a timestamp across handlers)."""
    rig = Rig()
    per_bar = {T0: 2, T1: 1}

    def act(ctx: StrategyContext) -> None:
        for _ in range(per_bar[ctx.ts_ns]):
            ctx.submit("X", Side.BUY, 1)

    rig.strategy.on_bar = act
    rig.strategy.on_filled = lambda ctx: ctx.submit("X", Side.SELL, 1)
    await rig.bus.publish(bars_at(T0))
    await rig.bus.publish(bars_at(T1))
    await rig.bus.publish(order_for(f"scripted-{T1}-1", "o1"))
    await rig.bus.publish(fill_of("o1", ts_ns=T1))
    assert rig.ids() == [
        f"scripted-{T0}-1",
        f"scripted-{T0}-2",
        f"scripted-{T1}-1",
        f"scripted-{T1}-2",
    ]


async def test_a_fresh_host_reproduces_the_ids_of_a_resumed_bar() -> None:
    """ids depend only on the bar and the order within it, not on the host's history: a run
    resumed at T1 emits the ids the original run emitted at T1."""

    def act(ctx: StrategyContext) -> None:
        ctx.submit("X", Side.BUY, 1)
        ctx.submit("X", Side.BUY, 1)

    original, resumed = Rig(), Rig()
    original.strategy.on_bar = resumed.strategy.on_bar = act
    await original.bus.publish(bars_at(T0))
    await original.bus.publish(bars_at(T1))
    await resumed.bus.publish(bars_at(T1))
    assert resumed.ids() == original.ids()[2:] == [f"scripted-{T1}-1", f"scripted-{T1}-2"]


# ---- submit and target ----------------------------------------------------------------------


@pytest.mark.parametrize("qty", [0, -3])
async def test_submit_with_a_non_positive_qty_raises_naming_the_strategy(qty: int) -> None:
    """The error names the strategy; nothing is queued and no id number is consumed."""
    rig = Rig()
    with pytest.raises(ValueError, match=rf"^scripted: .*positive, got {qty}$"):
        rig.host.submit("X", Side.BUY, qty)
    rig.strategy.on_bar = lambda ctx: ctx.submit("X", Side.BUY, 1)
    await rig.bus.publish(bars_at(T0))
    assert rig.ids() == [f"scripted-{T0}-1"]


@pytest.mark.parametrize(
    ("position", "pending", "goal", "expected"),
    [
        (5, 3, 10, (Side.BUY, 2)),  # 10 - 5 - 3
        (5, 3, 8, None),  # already there counting what is in flight
        (5, 3, 0, (Side.SELL, 8)),
        (5, 3, -2, (Side.SELL, 10)),
        (-4, 0, 4, (Side.BUY, 8)),
        (0, -6, 0, (Side.BUY, 6)),
    ],
)
async def test_target_orders_the_difference_to_position_plus_pending(
    position: int, pending: int, goal: int, expected: tuple[Side, int] | None
) -> None:
    rig = Rig()
    rig.positions.held["X"] = position
    rig.pending.by_symbol["X"] = pending
    rig.strategy.on_bar = lambda ctx: ctx.target("X", goal, reason="aim")
    await rig.bus.publish(bars_at(T0))
    got = [(i.side, i.qty, i.order_type, i.reason) for i in rig.intents]
    assert got == ([] if expected is None else [(*expected, OrderType.MARKET, "aim")])


async def test_context_reads_come_from_the_portfolio_and_the_pending_book() -> None:
    rig = Rig()
    rig.positions.held["X"] = 7
    rig.pending.by_symbol["X"] = -2
    seen: list[object] = []

    def act(ctx: StrategyContext) -> None:
        seen.extend([ctx.ts_ns, ctx.position("X"), ctx.pending("X"), ctx.position("Y")])
        seen.append(ctx.positions_by_sid().tolist())

    rig.strategy.on_bar = act
    rig.host.start()
    await rig.bus.publish(bars_at(T1))
    assert rig.strategy.started_with is rig.host
    assert seen == [T1, 7, -2, 0, [3, 0, -2]]


# ---- warm-up --------------------------------------------------------------------------------


async def test_intents_emitted_while_warming_are_discarded() -> None:
    rig = Rig()
    rig.strategy.on_bar = lambda ctx: ctx.submit("X", Side.BUY, 1)
    rig.host.warming = True
    await rig.bus.publish(bars_at(T0))
    assert rig.intents == []
    rig.host.warming = False
    await rig.bus.publish(bars_at(T1))
    assert rig.ids() == [f"scripted-{T1}-1"]  # nothing from the warm-up leaks out later


# ---- fills ----------------------------------------------------------------------------------


async def test_only_fills_of_orders_from_this_hosts_intents_are_forwarded() -> None:
    """Fills of other orders (risk closes, square-off, and another strategy whose name merely
    starts with ours) are not the strategy's business."""
    rig = Rig()
    rig.strategy.on_bar = lambda ctx: ctx.submit("X", Side.BUY, 5)
    await rig.bus.publish(bars_at(T0))
    [mine] = rig.ids()
    await rig.bus.publish(order_for(mine, "o1"))
    await rig.bus.publish(order_for(f"risk-{T0}-X", "o2"))
    await rig.bus.publish(order_for(f"scripted-x-{T0}-1", "o3"))
    for order_id in ("o2", "o3", "o1", "never-ordered"):
        await rig.bus.publish(fill_of(order_id))
    assert [f.order_id for f in rig.strategy.fills] == ["o1"]


async def test_partial_fills_of_an_own_order_all_arrive() -> None:
    """Claiming an order is per order id, not per fill: every partial fill is forwarded."""
    rig = Rig()
    rig.strategy.on_bar = lambda ctx: ctx.submit("X", Side.BUY, 5)
    await rig.bus.publish(bars_at(T0))
    await rig.bus.publish(order_for(rig.ids()[0], "o1"))
    await rig.bus.publish(fill_of("o1", qty=2))
    await rig.bus.publish(fill_of("o1", qty=3))
    assert [f.qty for f in rig.strategy.fills] == [2, 3]


async def test_adopted_orders_fills_reach_the_strategy_after_a_restart() -> None:
    """A restarted host never saw the intents of orders still open at the broker;
    ``adopt_order`` claims those of this strategy (by the id prefix), not others'."""
    rig = Rig()
    rig.host.adopt_order(order_for(f"scripted-{T0}-1", "o7"))
    rig.host.adopt_order(order_for(f"risk-{T0}-X", "o8"))
    rig.host.adopt_order(order_for(f"scripted_v2-{T0}-1", "o9"))
    for order_id in ("o7", "o8", "o9"):
        await rig.bus.publish(fill_of(order_id, ts_ns=T2))
    assert [f.order_id for f in rig.strategy.fills] == ["o7"]


async def test_intents_from_a_fill_handler_use_the_fill_timestamp() -> None:
    rig = Rig()
    rig.host.adopt_order(order_for(f"scripted-{T0}-1", "o7"))
    rig.strategy.on_filled = lambda ctx: ctx.submit("X", Side.SELL, 5, reason="exit")
    await rig.bus.publish(fill_of("o7", ts_ns=T2))
    assert [(i.ts_ns, i.intent_id, i.reason) for i in rig.intents] == [
        (T2, f"scripted-{T2}-1", "exit")
    ]


# ---- bookkeeping ----------------------------------------------------------------------------


async def test_intent_ids_that_never_became_orders_are_not_kept() -> None:
    """The host remembers its intents until they become orders. Intents that never will — the
    ones discarded in warm-up and the ones the risk chain denied — must not pile up for the
    whole run (a live session emits thousands). Wired with the real execution stage, so an
    approved intent does become an order (and its fill still reaches the strategy)."""

    class DenyY:
        name = "deny_y"

        def check(self, intent: OrderIntent, reducing: bool) -> str | None:
            return "no Y" if intent.symbol == "Y" else None

    class Account:
        equity = 1e6

        def qty(self, symbol: str) -> int:
            return 0

        def last_price(self, symbol: str) -> float:
            return 100.0

        def gross_exposure(self) -> float:
            return 0.0

    broker_orders: list[Order] = []

    class Recording(Broker):
        async def submit(self, order: Order) -> None:
            broker_orders.append(order)

        async def cancel(self, order_id: str, reason: str = "") -> None: ...

        def open_orders(self) -> list[Order]:
            return []

    rig = Rig()
    book = PendingBook()
    state = TradingStateMachine(rig.bus.publish, rig.bus.next_seq)
    chain = RiskChain([DenyY()], Account(), book)
    stage = ExecutionStage(rig.bus, chain, Recording(), book, state)
    rig.bus.subscribe(OrderIntent, stage.on_intent)

    def act(ctx: StrategyContext) -> None:
        ctx.submit("X", Side.BUY, 1)
        ctx.submit("Y", Side.BUY, 1)

    rig.strategy.on_bar = act
    rig.host.warming = True
    await rig.bus.publish(bars_at(T0))  # both discarded
    rig.host.warming = False
    for ts in (T1, T2):
        await rig.bus.publish(bars_at(ts))  # X approved, Y denied

    assert [o.intent_id for o in broker_orders] == [f"scripted-{T1}-1", f"scripted-{T2}-1"]
    await rig.bus.publish(fill_of(broker_orders[0].order_id))
    assert len(rig.strategy.fills) == 1  # the approved order is still the strategy's
    # what the host keeps is bounded by the orders it owns: nothing per intent
    assert rig.host._my_orders == {o.order_id for o in broker_orders}
    kept = sum(len(v) for v in vars(rig.host).values() if isinstance(v, set | dict | list))
    assert kept == len(broker_orders)
