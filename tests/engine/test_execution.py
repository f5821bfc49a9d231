"""Direct tests of the execution stage and the pending book (engine/execution.py).

Promises under test, from the module: the risk chain decides every intent; approved intents
become ``Order``s that are published and then submitted; denials are published as
``RiskEvent``s (stored) and reach no broker; the pending book holds the signed unfilled
quantity per symbol so nobody double-orders while an order is in flight. Execution itself does
no state handling beyond stamping each denial with the current trading state — HALTED and
REDUCING are judged by the ``TradingStateGate`` in the chain, wired here as in the pipeline.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest

from config.settings import RiskSettings
from engine.bus import EventBus
from engine.events import (
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    OrderUpdate,
    RiskEvent,
    Side,
    TradingState,
)
from engine.execution import ExecutionStage, PendingBook
from engine.ports import Broker
from risk.chain import RiskChain
from risk.gates import Gate, MaxPositionGate, TradingStateGate
from risk.state import TradingStateMachine

TS = 1_704_167_100_000_000_000  # 2024-01-02 09:15 IST


class Submitted(NamedTuple):
    order_id: str


class RecordingBroker(Broker):
    """Journals submits into the shared journal so their order against bus events shows."""

    def __init__(self, journal: list[object]) -> None:
        self._journal = journal
        self.submitted: list[Order] = []

    async def submit(self, order: Order) -> None:
        self._journal.append(Submitted(order.order_id))
        self.submitted.append(order)

    async def cancel(self, order_id: str, reason: str = "") -> None:
        raise AssertionError("execution never cancels")

    def open_orders(self) -> list[Order]:
        return list(self.submitted)


class Account:
    def __init__(self, held: dict[str, int] | None = None) -> None:
        self.equity: float = 1_000_000.0
        self.held = dict(held or {})

    def qty(self, symbol: str) -> int:
        return self.held.get(symbol, 0)

    def last_price(self, symbol: str) -> float:
        return 100.0

    def gross_exposure(self) -> float:
        return 0.0


class Block:
    """A gate that denies one symbol, so tests choose which intents pass."""

    name = "block"

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        return f"{intent.symbol} is blocked" if intent.symbol == self.symbol else None


class Exploding:
    name = "exploding"

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        raise RuntimeError("boom")


class Rig:
    def __init__(
        self,
        extra_gates: list[Gate] | None = None,
        held: dict[str, int] | None = None,
        prefix: str = "o",
    ) -> None:
        self.bus = EventBus()
        self.journal: list[object] = []
        self.bus.subscribe(Order, self.journal.append)
        self.bus.subscribe(RiskEvent, self.journal.append)
        self.account = Account(held)
        self.broker = RecordingBroker(self.journal)
        self.pending = PendingBook()
        self.state = TradingStateMachine(self.bus.publish, self.bus.next_seq)
        gates: list[Gate] = [TradingStateGate(self.state), *(extra_gates or [])]
        self.chain = RiskChain(gates, self.account, self.pending)
        self.stage = ExecutionStage(
            self.bus, self.chain, self.broker, self.pending, self.state, prefix
        )
        self.bus.subscribe(OrderIntent, self.stage.on_intent)

    async def send(self, *intents: OrderIntent) -> list[object]:
        start = len(self.journal)
        for i in intents:
            await self.bus.publish(i._replace(seq=self.bus.next_seq()))
        return self.journal[start:]

    def denials(self) -> list[RiskEvent]:
        return [e for e in self.journal if isinstance(e, RiskEvent) and e.kind == "deny"]


def intent(
    symbol: str = "X",
    side: Side = Side.BUY,
    qty: int = 10,
    n: int = 1,
    strategy: str = "s",
    order_type: OrderType = OrderType.MARKET,
    limit_price: float = math.nan,
    reason: str = "",
) -> OrderIntent:
    return OrderIntent(
        TS, 0, f"{strategy}-{TS}-{n}", strategy, symbol, side, qty, order_type, limit_price,
        math.nan, reason,
    )  # fmt: skip


# ---- approved intents -----------------------------------------------------------------------


async def test_an_approved_intent_becomes_an_order_published_then_submitted() -> None:
    """The Order copies the intent, is OPEN, takes the next bus seq, and is published before
    it is submitted (the store and the host see it before the broker can fill it)."""
    rig = Rig()
    limit = intent(
        "X", Side.SELL, 7, order_type=OrderType.LIMIT, limit_price=101.5, reason="take profit"
    )
    out = await rig.send(limit)
    assert out[1:] == [Submitted("o1")]
    order = out[0]
    assert isinstance(order, Order)
    assert order.seq > 0 and rig.broker.submitted == [order]
    assert math.isnan(order.stop_price)  # NaN != NaN: compared apart from the rest
    assert order._replace(seq=0, stop_price=0.0) == Order(
        TS, 0, "o1", limit.intent_id, "X", Side.SELL, 7, OrderType.LIMIT, 101.5, 0.0,
        OrderStatus.OPEN, "take profit",
    )  # fmt: skip
    assert (rig.stage.orders, rig.stage.denied) == (1, 0)


async def test_the_pending_book_already_holds_an_order_when_it_is_published() -> None:
    """Subscribers of Order (and the broker) must see it in flight, or a re-decision in their
    handlers would double-order."""
    rig = Rig()
    seen: list[int] = []
    rig.bus.subscribe(Order, lambda o: seen.append(rig.pending.pending(o.symbol)))
    await rig.send(intent("X", Side.SELL, 4))
    assert seen == [-4] and rig.pending.pending("X") == -4


async def test_order_ids_count_approved_orders_only_with_the_prefix() -> None:
    """ids are ``prefix + n``: a denial between two approvals does not consume a number."""
    rig = Rig([Block("BAD")], prefix="bt-")
    await rig.send(intent("X", n=1), intent("BAD", n=2), intent("Y", n=3))
    assert [o.order_id for o in rig.broker.submitted] == ["bt-1", "bt-2"]
    assert [o.intent_id for o in rig.broker.submitted] == [f"s-{TS}-1", f"s-{TS}-3"]
    assert (rig.stage.orders, rig.stage.denied) == (2, 1)


async def test_order_ids_are_deterministic_and_continue_after_a_restore() -> None:
    """The same intents give the same ids in a fresh stage; a resumed run sets ``orders`` to
    the number already stored and numbering carries on, so ids never collide with old ones."""
    intents = [intent("X", n=1), intent("Y", n=2)]
    first, second = Rig(), Rig()
    await first.send(*intents)
    await second.send(*intents)
    assert [o.order_id for o in first.broker.submitted] == ["o1", "o2"]
    assert first.broker.submitted == second.broker.submitted

    resumed = Rig()
    resumed.stage.orders = 7
    await resumed.send(intent("X", n=3))
    assert [o.order_id for o in resumed.broker.submitted] == ["o8"]


# ---- denials --------------------------------------------------------------------------------


async def test_a_denied_intent_is_published_as_a_denial_and_never_reaches_the_broker() -> None:
    rig = Rig([Block("BAD")])
    out = await rig.send(intent("BAD", Side.BUY, 3))
    assert rig.broker.submitted == [] and rig.pending.pending("BAD") == 0
    [event] = out
    assert isinstance(event, RiskEvent) and event.seq > 0
    assert (event.ts_ns, event.kind, event.gate, event.symbol, event.reason, event.state) == (
        TS, "deny", "block", "BAD", "BAD is blocked", TradingState.ACTIVE
    )  # fmt: skip
    assert (rig.stage.orders, rig.stage.denied) == (0, 1)


async def test_a_gate_error_denies_fail_closed_and_reaches_no_broker() -> None:
    rig = Rig([Exploding()])
    await rig.send(intent())
    [event] = rig.denials()
    assert event.gate == "exploding" and "fail closed" in event.reason and "boom" in event.reason
    assert rig.broker.submitted == []


async def test_pending_orders_count_against_the_next_intent() -> None:
    """With max 10 per symbol, a second BUY 6 while the first is still pending is denied."""
    rig = Rig()
    rig.chain.gates.append(
        MaxPositionGate(RiskSettings(max_position_qty=10), rig.account, rig.pending)
    )
    await rig.send(intent("X", Side.BUY, 6, n=1), intent("X", Side.BUY, 6, n=2))
    assert [o.intent_id for o in rig.broker.submitted] == [f"s-{TS}-1"]
    [denial] = rig.denials()
    assert denial.gate == "max_position" and "12" in denial.reason


# ---- trading state as execution sees it ------------------------------------------------------


async def test_halted_denies_strategy_intents_stamped_halted_but_risk_closes_pass() -> None:
    """Every denial carries the trading state at the time; the engine's own reducing close
    (source "risk") still becomes an order while HALTED."""
    rig = Rig(held={"X": 10})
    await rig.state.tighten(TradingState.HALTED, TS, "max_drawdown", "dd 21%")
    await rig.send(intent("X", Side.SELL, 10, n=1), intent("Y", Side.BUY, 1, n=2))
    assert [(d.gate, d.symbol, d.reason, d.state) for d in rig.denials()] == [
        ("trading_state", "X", "trading state HALTED (dd 21%)", TradingState.HALTED),
        ("trading_state", "Y", "trading state HALTED (dd 21%)", TradingState.HALTED),
    ]
    await rig.send(intent("X", Side.SELL, 10, strategy="risk"))
    assert [(o.symbol, o.side, o.qty) for o in rig.broker.submitted] == [("X", Side.SELL, 10)]


async def test_reducing_passes_only_exposure_reducing_strategy_intents() -> None:
    rig = Rig(held={"X": 10})
    await rig.state.tighten(TradingState.REDUCING, TS, "drawdown", "dd 16%")
    await rig.send(intent("X", Side.BUY, 1, n=1), intent("X", Side.SELL, 4, n=2))
    assert [(d.symbol, d.state) for d in rig.denials()] == [("X", TradingState.REDUCING)]
    assert [(o.side, o.qty) for o in rig.broker.submitted] == [(Side.SELL, 4)]


# ---- the pending book -----------------------------------------------------------------------


def order(order_id: str, symbol: str, side: Side, qty: int) -> Order:
    nan = math.nan
    return Order(
        TS, 0, order_id, "i", symbol, side, qty, OrderType.MARKET, nan, nan, OrderStatus.OPEN
    )


def fill(order_id: str, symbol: str, side: Side, qty: int) -> Fill:
    return Fill(TS, 0, order_id, symbol, side, qty, 100.0, 0.0)


def update(order_id: str, symbol: str, status: OrderStatus, filled: int = 0) -> OrderUpdate:
    return OrderUpdate(TS, 0, order_id, symbol, status, filled)


def test_pending_is_signed_and_per_symbol() -> None:
    book = PendingBook()
    book.add(order("o1", "X", Side.BUY, 10))
    book.add(order("o2", "X", Side.SELL, 4))
    book.add(order("o3", "Y", Side.SELL, 3))
    assert (book.pending("X"), book.pending("Y"), book.pending("Z")) == (6, -3, 0)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_partial_fills_reduce_and_the_last_fill_clears(side: Side) -> None:
    """Once fully filled the order is gone: a late cancel for it must not subtract again."""
    book = PendingBook()
    book.add(order("o1", "X", side, 10))
    book.on_fill(fill("o1", "X", side, 3))
    assert book.pending("X") == int(side) * 7
    book.on_fill(fill("o1", "X", side, 7))
    assert book.pending("X") == 0
    book.on_update(update("o1", "X", OrderStatus.CANCELLED))
    assert book.pending("X") == 0


@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.REJECTED])
def test_cancel_or_reject_clears_only_the_unfilled_rest(status: OrderStatus) -> None:
    book = PendingBook()
    book.add(order("o1", "X", Side.BUY, 10))
    book.add(order("o2", "X", Side.BUY, 5))
    book.on_fill(fill("o1", "X", Side.BUY, 4))
    book.on_update(update("o1", "X", status, filled=4))
    assert book.pending("X") == 5  # o2 untouched, o1's remaining 6 gone
    book.on_update(update("o1", "X", status, filled=4))  # repeated: ignored
    assert book.pending("X") == 5


def test_open_and_filled_updates_and_unknown_orders_change_nothing() -> None:
    """Quantity moves only with Fill events (a FILLED update must not double-count), and
    fills or updates for orders the book never saw (another run's, say) are ignored."""
    book = PendingBook()
    book.add(order("o1", "X", Side.BUY, 10))
    book.on_update(update("o1", "X", OrderStatus.FILLED, filled=10))
    book.on_update(update("o1", "X", OrderStatus.OPEN))
    book.on_fill(fill("zz", "X", Side.BUY, 10))
    book.on_update(update("zz", "X", OrderStatus.CANCELLED))
    assert book.pending("X") == 10
