"""Direct tests of the trading state machine (risk/state.py).

The machine is the single place that decides whether trading may loosen, so these pin its rules:
``tighten`` only ever moves to a stricter state, ``resume`` is the only way back to ACTIVE, and
every move (and only a move) is published as a ``RiskEvent`` with a fresh sequence number.
"""

from __future__ import annotations

import itertools

import pytest

from engine.bus import EventBus
from engine.events import RiskEvent, TradingState
from risk.state import TradingStateMachine

#: strictness order as the module docstring states it: ACTIVE → REDUCING → HALTED
ORDER = [TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED]
TS = 1_704_166_200_000_000_000  # 2024-01-02 09:00 IST, any timestamp will do


class Rig:
    """A state machine on a real bus, with every published RiskEvent captured."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[RiskEvent] = []
        self.bus.subscribe(RiskEvent, self.events.append)
        self.machine = TradingStateMachine(self.bus.publish, self.bus.next_seq)

    async def put_in(self, state: TradingState) -> None:
        """Drive the machine into ``state`` through its public API, then forget the events."""
        if state is not TradingState.ACTIVE:
            assert await self.machine.tighten(state, TS, "setup", "setup")
        assert self.machine.state is state
        self.events.clear()


async def test_starts_active_with_no_reason() -> None:
    """A fresh machine allows trading; nothing is published just by constructing it."""
    rig = Rig()
    assert rig.machine.state is TradingState.ACTIVE and rig.machine.reason == ""
    assert rig.events == []


async def test_tighten_walks_active_reducing_halted_and_publishes_each_move() -> None:
    """Each stricter step moves, returns True, records the reason, and publishes one event."""
    rig = Rig()
    m = rig.machine
    assert await m.tighten(TradingState.REDUCING, TS, "drawdown", "dd 16%") is True
    assert (m.state, m.reason) == (TradingState.REDUCING, "dd 16%")
    assert await m.tighten(TradingState.HALTED, TS + 1, "max_drawdown", "dd 21%") is True
    assert (m.state, m.reason) == (TradingState.HALTED, "dd 21%")
    assert [(e.ts_ns, e.kind, e.gate, e.symbol, e.reason, e.state) for e in rig.events] == [
        (TS, "state", "drawdown", "", "dd 16%", TradingState.REDUCING),
        (TS + 1, "state", "max_drawdown", "", "dd 21%", TradingState.HALTED),
    ]


@pytest.mark.parametrize(
    ("start", "target"), list(itertools.product(ORDER, ORDER)), ids=lambda s: str(s)
)
async def test_tighten_moves_only_to_a_strictly_stricter_state(
    start: TradingState, target: TradingState
) -> None:
    """Every (from, to) pair: it moves iff ``to`` ranks above ``from``; otherwise the call is a
    silent no-op that keeps the old state and reason and publishes nothing."""
    rig = Rig()
    await rig.put_in(start)
    reason_before = rig.machine.reason
    stricter = ORDER.index(target) > ORDER.index(start)

    moved = await rig.machine.tighten(target, TS + 5, "gate", "why")

    assert moved is stricter
    if stricter:
        assert rig.machine.state is target and rig.machine.reason == "why"
        assert [(e.gate, e.state) for e in rig.events] == [("gate", target)]
    else:
        assert rig.machine.state is start and rig.machine.reason == reason_before
        assert rig.events == []


@pytest.mark.parametrize("start", [TradingState.REDUCING, TradingState.HALTED])
async def test_resume_returns_to_active_and_says_who_and_why(start: TradingState) -> None:
    """``resume`` is the loosening path: ACTIVE again, with who did it as the event's gate."""
    rig = Rig()
    await rig.put_in(start)
    await rig.machine.resume(TS + 9, "alice", "cause fixed")
    assert (rig.machine.state, rig.machine.reason) == (TradingState.ACTIVE, "cause fixed")
    assert [(e.ts_ns, e.kind, e.gate, e.reason, e.state) for e in rig.events] == [
        (TS + 9, "state", "alice", "cause fixed", TradingState.ACTIVE)
    ]


async def test_resume_default_reason_is_operator_resume() -> None:
    """Without a reason the stored event still explains itself."""
    rig = Rig()
    await rig.put_in(TradingState.HALTED)
    await rig.machine.resume(TS, "http")
    assert [(e.gate, e.reason) for e in rig.events] == [("http", "operator resume")]


async def test_resume_when_already_active_publishes_nothing() -> None:
    """No transition, no stored event (the daemon may call resume blindly)."""
    rig = Rig()
    await rig.machine.resume(TS, "alice")
    assert rig.machine.state is TradingState.ACTIVE and rig.events == []


async def test_events_carry_increasing_bus_sequence_numbers() -> None:
    """Each event takes the next number from the shared counter at the time it is made, so the
    store can order state changes against other events (here: a number taken in between)."""
    rig = Rig()
    m = rig.machine
    await m.tighten(TradingState.REDUCING, TS, "a", "a")
    taken_between = rig.bus.next_seq()
    await m.tighten(TradingState.HALTED, TS, "b", "b")
    await m.tighten(TradingState.HALTED, TS, "c", "c")  # no move: takes no number
    await m.resume(TS, "d")
    seqs = [e.seq for e in rig.events]
    assert len(seqs) == 3
    assert seqs[0] < taken_between < seqs[1] < seqs[2]
    assert seqs[2] == seqs[1] + 1  # the ignored tighten consumed no sequence number
