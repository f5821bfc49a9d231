"""Direct tests of the per-bar risk monitor (risk/monitor.py).

Real bus, settings and state machine; the account and the broker are small fakes, so each test
controls equity bar by bar and sees exactly what the monitor published (state changes, close
intents) and asked the broker to cancel, in one journal that keeps their relative order.
Timestamps are UTC epoch ns built from IST wall-clock times (``ist``), since sessions and the
daily-loss day are IST days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from config.sessions import IST_OFFSET_NS, NS_PER_DAY, NS_PER_MINUTE, local_day
from config.settings import RiskSettings
from engine.bus import EventBus
from engine.events import (
    BarSlice,
    BrokerEvent,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    RiskEvent,
    Side,
    TradingState,
)
from risk.monitor import KILL_SWITCH, BrokerTroubleGuard, RiskMonitor, publish_close
from risk.state import TradingStateMachine

EPOCH = date(1970, 1, 1)
WED = (date(2024, 1, 3) - EPOCH).days  # IST calendar day numbers, as engine.sessions counts them
THU, FRI, MON, TUE = WED + 1, WED + 2, WED + 5, WED + 6
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def ist(day: int, hh: int, mm: int) -> int:
    """UTC epoch ns of ``hh:mm`` IST on IST calendar day ``day``."""
    return day * NS_PER_DAY + (hh * 60 + mm) * NS_PER_MINUTE - IST_OFFSET_NS


def settings(
    daily: float = 50.0, reduce: float = 10.0, max_dd: float = 20.0, flatten: bool = True
) -> RiskSettings:
    return RiskSettings(
        daily_loss_limit_pct=daily,
        reduce_drawdown_pct=reduce,
        max_drawdown_pct=max_dd,
        flatten_on_halt=flatten,
    )


class Cancel(NamedTuple):
    order_id: str
    reason: str


Entry = RiskEvent | OrderIntent | Cancel


class Account:
    """Equity set by the test; holdings are what a flatten must close."""

    def __init__(self, equity: float, held: dict[str, int] | None = None) -> None:
        self.equity = equity
        self.held = dict(held or {})

    def qty(self, symbol: str) -> int:
        return self.held.get(symbol, 0)

    def last_price(self, symbol: str) -> float:
        return 100.0

    def gross_exposure(self) -> float:
        return 0.0

    def holdings(self) -> dict[str, int]:
        return {s: q for s, q in self.held.items() if q}


class Broker:
    """Open orders the test chose; a cancel is journaled and removes the order."""

    def __init__(self, journal: list[Entry], orders: Iterable[Order]) -> None:
        self._journal = journal
        self.orders = list(orders)

    def open_orders(self) -> list[Order]:
        return list(self.orders)

    async def cancel(self, order_id: str, reason: str = "") -> None:
        self._journal.append(Cancel(order_id, reason))
        self.orders = [o for o in self.orders if o.order_id != order_id]


def open_order(order_id: str, symbol: str, side: Side = Side.BUY, qty: int = 5) -> Order:
    nan = math.nan
    return Order(
        0, 0, order_id, f"s-0-{order_id}", symbol, side, qty, OrderType.MARKET, nan, nan,
        OrderStatus.OPEN,
    )  # fmt: skip


def bar_at(ts_ns: int) -> BarSlice:
    """The monitor reads only the timestamp; the account supplies the equity."""
    f = np.empty(0)
    return BarSlice(
        ts_ns, 0, NS_PER_MINUTE, np.empty(0, np.int64), (), f, f, f, f, f, np.empty(0, bool)
    )


class Rig:
    def __init__(
        self,
        risk: RiskSettings,
        equity: float = 100_000.0,
        held: dict[str, int] | None = None,
        orders: Iterable[Order] = (),
    ) -> None:
        self.bus = EventBus()
        self.journal: list[Entry] = []
        self.bus.subscribe(RiskEvent, self.journal.append)
        self.bus.subscribe(OrderIntent, self.journal.append)
        self.account = Account(equity, held)
        self.broker = Broker(self.journal, orders)
        self.state = TradingStateMachine(self.bus.publish, self.bus.next_seq)
        self.monitor = RiskMonitor(self.bus, risk, self.account, self.state, self.broker)
        self.bus.subscribe(BarSlice, self.monitor.on_bars)

    async def bar(self, ts_ns: int, equity: float) -> list[Entry]:
        """One bar at ``equity``; returns what it caused."""
        start = len(self.journal)
        self.account.equity = equity
        await self.bus.publish(bar_at(ts_ns))
        return self.journal[start:]

    async def bars(self, path: Iterable[tuple[int, float]]) -> list[Entry]:
        start = len(self.journal)
        for ts_ns, equity in path:
            await self.bar(ts_ns, equity)
        return self.journal[start:]


def states(entries: Iterable[Entry]) -> list[tuple[str, TradingState]]:
    return [(e.gate, e.state) for e in entries if isinstance(e, RiskEvent)]


def shape(entries: Iterable[Entry]) -> list[tuple[str, ...]]:
    """The journal without seq numbers: what happened, in order."""
    out: list[tuple[str, ...]] = []
    for e in entries:
        if isinstance(e, RiskEvent):
            out.append(("state", e.gate, e.state))
        elif isinstance(e, Cancel):
            out.append(("cancel", e.order_id))
        else:
            out.append(("close", e.symbol, e.side.name, str(e.qty)))
    return out


def test_the_test_clock_agrees_with_pandas_and_sessions() -> None:
    """``ist`` is the fixture everything else stands on: check it independently."""
    assert ist(FRI, 9, 15) == pd.Timestamp("2024-01-05 09:15", tz="Asia/Kolkata").value
    assert local_day(ist(FRI, 0, 0)) == FRI and local_day(ist(FRI, 0, 0) - 1) == THU


# ---- drawdown -------------------------------------------------------------------------------


async def test_quiet_bars_publish_nothing_and_the_peak_follows_equity() -> None:
    """Inside every limit the monitor is silent; the peak is the highest equity seen."""
    rig = Rig(settings(), equity=100_000.0, held={"X": 10}, orders=[open_order("o1", "X")])
    out = await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 104_000)])
    out += await rig.bars([(ist(WED, 9, 17), 96_000), (ist(THU, 9, 15), 95_000)])
    assert out == [] and rig.state.state is ACTIVE
    assert rig.monitor.peak == 104_000


async def test_drawdown_reaching_the_reduce_level_moves_to_reducing_without_flattening() -> None:
    """≥ is inclusive: 128k → 96k is exactly 25% (all values exact in binary floating point);
    one rupee above it is not a crossing. REDUCING does not close anything."""
    rig = Rig(settings(reduce=25.0, max_dd=40.0), 128_000.0, {"X": 10}, [open_order("o1", "X")])
    assert await rig.bars([(ist(WED, 9, 15), 128_000), (ist(WED, 9, 16), 96_001)]) == []
    out = await rig.bar(ist(WED, 9, 17), 96_000)
    assert states(out) == [("drawdown", REDUCING)] and len(out) == 1  # no cancels, no closes
    event = out[0]
    assert isinstance(event, RiskEvent)
    assert event.ts_ns == ist(WED, 9, 17) and event.kind == "state"
    assert event.reason == f"drawdown {1 - 96_000 / 128_000:.2%} ≥ {0.25:.2%}"
    assert rig.state.state is REDUCING


async def test_drawdown_is_measured_from_the_running_peak_not_the_start() -> None:
    """120k → 107k is 10.8% off the peak (≥ 10%) though still 7% above the starting equity."""
    rig = Rig(settings(reduce=10.0))
    out = await rig.bars([(ist(WED, 9, 15), 120_000), (ist(WED, 9, 16), 107_000)])
    assert 1 - 107_000 / 120_000 >= 0.10
    assert states(out) == [("drawdown", REDUCING)]


async def test_reducing_sticks_within_the_day_and_a_new_session_lifts_it() -> None:
    """Recovery does not loosen the state mid-day (state only tightens on its own); the next
    IST day's first bar resumes via "new session" and, with the drawdown gone, stays ACTIVE."""
    rig = Rig(settings(reduce=10.0))
    await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 89_000)])
    assert rig.state.state is REDUCING
    assert await rig.bar(ist(WED, 9, 17), 99_000) == []
    assert rig.state.state is REDUCING
    out = await rig.bar(ist(THU, 9, 15), 99_000)
    assert [(e.gate, e.reason, e.state) for e in out if isinstance(e, RiskEvent)] == [
        ("session", "new session", ACTIVE)
    ]
    assert rig.state.state is ACTIVE


async def test_a_new_session_still_in_drawdown_goes_straight_back_to_reducing() -> None:
    """The resume is re-judged on the same bar, so the strategy (which runs after the monitor
    on that bar) never sees ACTIVE while the drawdown persists."""
    rig = Rig(settings(reduce=10.0))
    await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 89_000)])
    out = await rig.bar(ist(THU, 9, 15), 88_000)
    assert states(out) == [("session", ACTIVE), ("drawdown", REDUCING)]
    assert rig.state.state is REDUCING


async def test_max_drawdown_halts_cancels_open_orders_first_then_closes_holdings() -> None:
    """Straight to HALTED (max is checked before reduce); then every open order is cancelled
    before any close intent is published (an in-flight entry would otherwise fill after the
    flatten); closes are market intents from "risk", one per holding, sorted by symbol."""
    held = {"Y": -5, "X": 10, "Z": 0}
    orders = [open_order("o1", "X"), open_order("o2", "Y", Side.SELL)]
    rig = Rig(settings(reduce=10.0, max_dd=20.0), 100_000.0, held, orders)
    ts = ist(WED, 10, 0)
    await rig.bar(ist(WED, 9, 15), 100_000)
    out = await rig.bar(ts, 79_000)

    halt_reason = f"drawdown {1 - 79_000 / 100_000:.2%} ≥ {0.20:.2%}"
    flatten_reason = f"flatten on halt: {halt_reason}"
    assert shape(out) == [
        ("state", "max_drawdown", HALTED),
        ("cancel", "o1"),
        ("cancel", "o2"),
        ("close", "X", "SELL", "10"),
        ("close", "Y", "BUY", "5"),
    ]
    event, c1, c2, close_x, close_y = out
    assert isinstance(event, RiskEvent) and event.reason == halt_reason
    assert c1 == Cancel("o1", flatten_reason) and c2 == Cancel("o2", flatten_reason)
    for close, symbol in ((close_x, "X"), (close_y, "Y")):
        assert isinstance(close, OrderIntent)
        assert (close.ts_ns, close.intent_id, close.strategy) == (ts, f"risk-{ts}-{symbol}", "risk")
        assert close.order_type is OrderType.MARKET and close.reason == flatten_reason
    assert isinstance(close_x, OrderIntent) and isinstance(close_y, OrderIntent)
    assert event.seq < close_x.seq < close_y.seq
    assert rig.state.state is HALTED


async def test_a_halt_flattens_once_not_on_every_later_bar() -> None:
    """Further losses while already HALTED publish nothing: the halt did not move again."""
    rig = Rig(settings(), 100_000.0, {"X": 10})
    await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 79_000)])
    assert await rig.bars([(ist(WED, 9, 17), 70_000), (ist(WED, 9, 18), 60_000)]) == []


async def test_a_new_session_in_max_drawdown_halts_and_flattens_again() -> None:
    """A max-drawdown halt is lifted by the session like any non-kill-switch halt, and re-judged
    on that bar: HALTED again, and what is still held is closed again."""
    rig = Rig(settings(), 100_000.0, {"X": 10})
    await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 79_000)])
    out = await rig.bar(ist(THU, 9, 15), 79_000)
    assert shape(out) == [
        ("state", "session", ACTIVE),
        ("state", "max_drawdown", HALTED),
        ("close", "X", "SELL", "10"),
    ]


async def test_flatten_on_halt_false_halts_without_touching_orders_or_holdings() -> None:
    rig = Rig(settings(flatten=False), 100_000.0, {"X": 10}, [open_order("o1", "X")])
    out = await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 79_000)])
    assert shape(out) == [("state", "max_drawdown", HALTED)]
    assert [o.order_id for o in rig.broker.open_orders()] == ["o1"]


@pytest.mark.parametrize(
    ("reduce", "equity", "expected"),
    [(10.0, 90_000, ("drawdown", REDUCING)), (15.0, 80_000, ("max_drawdown", HALTED))],
)
async def test_a_drawdown_of_exactly_the_limit_crosses_it(
    reduce: float, equity: float, expected: tuple[str, TradingState]
) -> None:
    """Round limits (the default max is 20%): 100k → 90k is a 10% drawdown and 100k → 80k a
    20% one; each must cross its level (the daily limit is set out of the way)."""
    rig = Rig(settings(daily=50.0, reduce=reduce, max_dd=20.0), 100_000.0)
    await rig.bar(ist(WED, 9, 15), 100_000)
    out = await rig.bar(ist(WED, 9, 16), equity)
    assert states(out) == [expected]


# ---- daily loss -----------------------------------------------------------------------------


async def test_daily_loss_halts_flattens_and_the_next_trading_day_starts_active() -> None:
    """Day loss is measured from the previous bar's (yesterday's last) equity. 5.5% down on
    Friday (only 5.5% off the peak, under the 15% reduce level) halts and flattens; Monday's
    first bar resumes via "new session", and Monday's loss counts from Friday's close."""
    rig = Rig(settings(daily=5.0, reduce=15.0, max_dd=25.0), 100_000.0, {"X": 10})
    rig.broker.orders = [open_order("o1", "X")]
    assert await rig.bars([(ist(FRI, 9, 15), 100_000), (ist(FRI, 10, 0), 98_000)]) == []

    out = await rig.bar(ist(FRI, 11, 0), 94_500)
    assert shape(out) == [
        ("state", "daily_loss", HALTED),
        ("cancel", "o1"),
        ("close", "X", "SELL", "10"),
    ]
    event = out[0]
    assert isinstance(event, RiskEvent)
    assert event.reason == f"daily loss {1 - 94_500 / 100_000:.2%} ≥ {0.05:.2%}"
    close = out[2]
    assert isinstance(close, OrderIntent) and close.reason == f"flatten on halt: {event.reason}"
    assert await rig.bar(ist(FRI, 15, 25), 94_000) == []  # same day: stays halted, quietly
    assert rig.state.state is HALTED

    rig.account.held.clear()  # the close filled over the weekend's first bar, say
    out = await rig.bar(ist(MON, 9, 15), 94_000)
    assert [(e.gate, e.reason, e.state) for e in out if isinstance(e, RiskEvent)] == [
        ("session", "new session", ACTIVE)
    ]
    assert rig.state.state is ACTIVE

    # Monday's start is Friday's last equity (94k), not the 100k Friday began with
    assert 1 - 90_000 / 94_000 < 0.05 <= 1 - 89_000 / 94_000 and 1 - 89_000 / 100_000 < 0.15
    assert await rig.bar(ist(MON, 10, 0), 90_000) == []
    assert states(await rig.bar(ist(MON, 11, 0), 89_000)) == [("daily_loss", HALTED)]


async def test_the_session_day_is_the_ist_day_not_the_utc_day() -> None:
    """IST midnight starts a session even when the UTC date does not change; UTC midnight
    (05:30 IST) does not."""
    rig = Rig(settings(daily=5.0, reduce=15.0, max_dd=25.0))
    assert ist(FRI, 5, 0) // NS_PER_DAY != ist(FRI, 6, 0) // NS_PER_DAY  # UTC dates differ
    await rig.bars([(ist(FRI, 5, 0), 100_000), (ist(FRI, 5, 10), 94_000)])
    assert rig.state.state is HALTED
    assert await rig.bar(ist(FRI, 6, 0), 94_000) == []  # a new UTC day, the same IST day
    assert rig.state.state is HALTED

    assert ist(FRI, 23, 50) // NS_PER_DAY == (ist(FRI + 1, 0, 10)) // NS_PER_DAY  # same UTC day
    await rig.bar(ist(FRI, 23, 50), 94_000)
    out = await rig.bar(ist(FRI + 1, 0, 10), 94_000)
    assert states(out) == [("session", ACTIVE)]


# ---- kill switch ----------------------------------------------------------------------------


async def test_kill_switch_halts_flattens_and_only_an_operator_lifts_it() -> None:
    rig = Rig(settings(), 100_000.0, {"X": 10}, [open_order("o1", "X")])
    await rig.bar(ist(WED, 9, 15), 100_000)
    ts = ist(WED, 9, 20)
    start = len(rig.journal)
    await rig.monitor.kill_switch(ts, "alice")
    out = rig.journal[start:]
    assert shape(out) == [
        ("state", KILL_SWITCH, HALTED),
        ("cancel", "o1"),
        ("close", "X", "SELL", "10"),
    ]
    event, cancel, close = out
    assert isinstance(event, RiskEvent) and event.reason == "kill switch by alice"
    assert cancel == Cancel("o1", "kill switch")
    assert isinstance(close, OrderIntent) and close.reason == "kill switch"
    assert close.strategy == "risk" and close.ts_ns == ts
    assert (rig.state.state, rig.state.reason) == (HALTED, KILL_SWITCH)

    # healthy equity on later days: a new session does not lift a kill switch
    assert await rig.bars([(ist(THU, 9, 15), 100_000), (ist(FRI, 9, 15), 101_000)]) == []
    assert rig.state.state is HALTED

    await rig.state.resume(ist(FRI, 9, 20), "alice")
    assert rig.state.state is ACTIVE
    assert await rig.bars([(ist(FRI, 9, 25), 101_000), (ist(MON, 9, 15), 101_000)]) == []


async def test_kill_switch_over_an_existing_halt_still_flattens_and_pins_the_halt() -> None:
    """Already HALTED by the daily loss (not flattened: flatten_on_halt off): the kill switch
    publishes no second state event, but it still closes everything and turns the halt into
    one that a new session does not lift."""
    rig = Rig(settings(daily=5.0, flatten=False), 100_000.0, {"X": 10})
    await rig.bars([(ist(WED, 9, 15), 100_000), (ist(WED, 9, 16), 94_000)])
    assert (rig.state.state, rig.state.reason) == (HALTED, f"daily loss {0.06:.2%} ≥ {0.05:.2%}")
    start = len(rig.journal)
    await rig.monitor.kill_switch(ist(WED, 9, 17))
    assert shape(rig.journal[start:]) == [("close", "X", "SELL", "10")]
    assert rig.state.reason == KILL_SWITCH
    assert await rig.bar(ist(THU, 9, 15), 100_000) == []
    assert rig.state.state is HALTED


# ---- flatten and halt directly --------------------------------------------------------------


async def test_flatten_only_a_symbol_cancels_and_closes_that_symbol_alone() -> None:
    """Per-symbol flatten leaves other symbols' orders and holdings alone, and the state too."""
    orders = [open_order("o1", "X"), open_order("o2", "Y"), open_order("o3", "X", Side.SELL)]
    rig = Rig(settings(), 100_000.0, {"X": -7, "Y": 4}, orders)
    await rig.monitor.flatten(ist(WED, 10, 0), "operator close X", only="X")
    assert shape(rig.journal) == [("cancel", "o1"), ("cancel", "o3"), ("close", "X", "BUY", "7")]
    assert all(e.reason == "operator close X" for e in rig.journal if not isinstance(e, RiskEvent))
    assert [o.order_id for o in rig.broker.open_orders()] == ["o2"]
    assert rig.state.state is ACTIVE


async def test_flatten_everything_with_nothing_open_or_held_publishes_nothing() -> None:
    rig = Rig(settings(), 100_000.0, {"X": 0})
    await rig.monitor.flatten(ist(WED, 10, 0), "why")
    assert rig.journal == []


@pytest.mark.parametrize(
    ("setting", "argument", "flattens"),
    [(True, None, True), (False, None, False), (False, True, True), (True, False, False)],
)
async def test_halt_flatten_argument_overrides_the_setting(
    setting: bool, argument: bool | None, flattens: bool
) -> None:
    rig = Rig(settings(flatten=setting), 100_000.0, {"X": 10})
    await rig.monitor.halt(ist(WED, 10, 0), "manual", "because", argument)
    expected = [("state", "manual", HALTED)] + ([("close", "X", "SELL", "10")] if flattens else [])
    assert shape(rig.journal) == expected


async def test_halt_when_already_halted_neither_publishes_nor_flattens() -> None:
    rig = Rig(settings(), 100_000.0, {"X": 10})
    await rig.monitor.halt(ist(WED, 10, 0), "first", "one", False)
    await rig.monitor.halt(ist(WED, 10, 1), "second", "two", True)
    assert shape(rig.journal) == [("state", "first", HALTED)]
    assert rig.state.reason == "one"


@pytest.mark.parametrize(("qty", "side"), [(7, Side.SELL), (-3, Side.BUY)])
async def test_publish_close_takes_a_signed_holding_to_zero(qty: int, side: Side) -> None:
    bus = EventBus()
    seen: list[OrderIntent] = []
    bus.subscribe(OrderIntent, seen.append)
    before = bus.next_seq()
    await publish_close(bus, 42, "square_off", "X", qty, "eod", "sq-42-X")
    [intent] = seen
    assert intent.seq > before
    assert math.isnan(intent.limit_price) and math.isnan(intent.stop_price)  # NaN != NaN
    assert intent._replace(seq=0, limit_price=0.0, stop_price=0.0) == OrderIntent(
        42, 0, "sq-42-X", "square_off", "X", side, abs(qty), OrderType.MARKET, 0.0, 0.0, "eod"
    )


# ---- crash recovery -------------------------------------------------------------------------


async def test_restore_day_continues_the_days_loss_from_the_stored_start() -> None:
    """Crashed on Friday at 97k after starting the day at 100k: the restarted monitor (built
    on the restored 97k account) must still count Friday's loss from 100k, so 94.5k (5.5%)
    halts. A monitor that was not restored would start a "new day" at 97k (2.6%) and not."""
    risk = settings(daily=5.0, reduce=15.0, max_dd=25.0)
    restored = Rig(risk, equity=97_000.0)
    restored.monitor.peak = 100_000.0  # as the restore does: from the stored equity curve
    restored.monitor.restore_day(FRI, ist(FRI + 1, 0, 0), 100_000.0, 97_000.0)
    out = await restored.bar(ist(FRI, 14, 0), 94_500)
    assert states(out) == [("daily_loss", HALTED)]

    unrestored = Rig(risk, equity=97_000.0)
    assert 1 - 94_500 / 97_000 < 0.05
    assert await unrestored.bar(ist(FRI, 14, 0), 94_500) == []


async def test_restore_day_next_session_starts_from_the_restored_last_equity() -> None:
    """After the restored day ends, the new day's loss counts from the restored last equity
    (97k), not the restored day start (100k): 92.5k on Monday is 4.6%, not 7.5%."""
    rig = Rig(settings(daily=5.0, reduce=15.0, max_dd=25.0), equity=97_000.0)
    rig.monitor.peak = 100_000.0
    rig.monitor.restore_day(FRI, ist(FRI + 1, 0, 0), 100_000.0, 97_000.0)
    assert 1 - 92_500 / 97_000 < 0.05 <= 1 - 92_500 / 100_000
    assert await rig.bar(ist(MON, 9, 15), 92_500) == []
    assert rig.state.state is ACTIVE


async def test_restore_day_applies_the_restored_peak_to_the_drawdown_check() -> None:
    """restore_day recomputes the drawdown level from ``peak`` (set just before it), so a bar
    within the restored day that is 16.7% off the restored 120k peak reduces."""
    rig = Rig(settings(reduce=15.0, max_dd=25.0), equity=100_000.0)
    rig.monitor.peak = 120_000.0
    rig.monitor.restore_day(FRI, ist(FRI + 1, 0, 0), 100_000.0, 100_000.0)
    assert states(await rig.bar(ist(FRI, 14, 0), 100_000)) == [("drawdown", REDUCING)]


#: Five trading days that pass through every branch: a daily-loss halt (Thu), its lifting,
#: a drawdown REDUCING (Fri), a max-drawdown halt (Mon) and its re-assertion (Tue).
PATH: list[tuple[int, float]] = [
    (ist(WED, 9, 15), 100_000), (ist(WED, 11, 0), 103_000), (ist(WED, 15, 0), 97_500),
    (ist(THU, 9, 15), 96_000), (ist(THU, 11, 0), 93_000), (ist(THU, 13, 0), 92_500),
    (ist(FRI, 9, 15), 93_000), (ist(FRI, 11, 0), 92_000), (ist(FRI, 15, 0), 95_000),
    (ist(MON, 9, 15), 95_000), (ist(MON, 11, 0), 82_000),
    (ist(TUE, 9, 15), 82_000), (ist(TUE, 11, 0), 83_000),
]  # fmt: skip


async def test_the_restore_path_passes_through_every_branch() -> None:
    """What the crash-recovery test below replays, uninterrupted (so it checks something)."""
    rig = Rig(settings(daily=5.0, reduce=10.0, max_dd=20.0), 100_000.0, {"X": 10})
    assert shape(await rig.bars(PATH)) == [
        ("state", "daily_loss", HALTED), ("close", "X", "SELL", "10"),  # Thu 13:00, 5.1% down
        ("state", "session", ACTIVE),  # Fri 09:15
        ("state", "drawdown", REDUCING),  # Fri 11:00, 10.7% off the 103k peak
        ("state", "session", ACTIVE),  # Mon 09:15, 7.8% off
        ("state", "max_drawdown", HALTED), ("close", "X", "SELL", "10"),  # Mon 11:00, 20.4%
        ("state", "session", ACTIVE),  # Tue 09:15 ...
        ("state", "max_drawdown", HALTED), ("close", "X", "SELL", "10"),  # ... still 20.4%
    ]  # fmt: skip


def comparable(entries: Iterable[Entry]) -> list[object]:
    """Entries minus their seq (the two buses number independently) and the NaN prices of
    market closes (NaN != NaN)."""
    out: list[object] = []
    for e in entries:
        if isinstance(e, OrderIntent):
            assert math.isnan(e.limit_price) and math.isnan(e.stop_price)
            out.append(e._replace(seq=0, limit_price=0.0, stop_price=0.0))
        else:
            out.append(e if isinstance(e, Cancel) else e._replace(seq=0))
    return out


@pytest.mark.parametrize("crash_after", range(1, len(PATH)))
async def test_a_restored_monitor_carries_on_exactly_like_an_uninterrupted_one(
    crash_after: int,
) -> None:
    """Crash after any bar, restore the way engine/restore.py does (state and reason,
    peak from the stored equity curve, the day's start = the last equity of an earlier day or
    the capital), and the rest of the run publishes exactly what the uninterrupted run did."""
    risk, capital, held = settings(daily=5.0, reduce=10.0, max_dd=20.0), 100_000.0, {"X": 10}
    whole = Rig(risk, capital, held)
    await whole.bars(PATH[:crash_after])
    stored_state = whole.state.state, whole.state.reason  # what the crash left in the store
    expected = await whole.bars(PATH[crash_after:])

    done = PATH[:crash_after]
    last_ts, last_equity = done[-1]
    day = local_day(last_ts)
    again = Rig(risk, last_equity, held)
    again.state.state, again.state.reason = stored_state
    again.monitor.peak = max(capital, max(e for _, e in done))
    day_start = next((e for t, e in reversed(done) if local_day(t) < day), capital)
    again.monitor.restore_day(day, (day + 1) * NS_PER_DAY - IST_OFFSET_NS, day_start, last_equity)

    assert comparable(await again.bars(PATH[crash_after:])) == comparable(expected)
    assert (again.state.state, again.state.reason) == (whole.state.state, whole.state.reason)


# ---- broker trouble -------------------------------------------------------------------------


def broker_rig() -> tuple[Rig, BrokerTroubleGuard]:
    rig = Rig(settings(flatten=True), 100_000.0, {"X": 10}, [open_order("o1", "X")])
    guard = BrokerTroubleGuard(rig.monitor)
    rig.bus.subscribe(BrokerEvent, guard.on_broker_event)
    return rig, guard


async def test_broker_trouble_halts_without_flattening() -> None:
    """Broker trouble halts even with flatten_on_halt on, but cancels and closes nothing: the
    broker that would carry them is the thing in trouble."""
    rig, _ = broker_rig()
    ts = ist(WED, 10, 0)
    await rig.bus.publish(BrokerEvent(ts, rig.bus.next_seq(), "token_expired", "token gone", True))
    [event] = rig.journal  # no Cancel, no close intent
    assert isinstance(event, RiskEvent)
    assert (event.ts_ns, event.kind, event.gate, event.reason, event.state) == (
        ts,
        "state",
        "broker_token_expired",
        "token gone",
        HALTED,
    )
    assert [o.order_id for o in rig.broker.open_orders()] == ["o1"]


@pytest.mark.parametrize("kind", ["reconciled", "rejected", "order_error", "network"])
async def test_broker_news_that_does_not_halt_is_ignored(kind: str) -> None:
    rig, guard = broker_rig()
    event = BrokerEvent(ist(WED, 10, 0), rig.bus.next_seq(), kind, "fyi", False)
    assert guard.on_broker_event(event) is None
    await rig.bus.publish(event)
    assert rig.journal == [] and rig.state.state is ACTIVE


async def test_a_broker_halt_is_lifted_by_the_next_session() -> None:
    """Current behaviour (the monitor's docstring: every halt but the kill switch ends with the
    session). NB BrokerTroubleGuard's docstring says "the operator resumes" instead."""
    rig, _ = broker_rig()
    await rig.bar(ist(WED, 9, 15), 100_000)
    await rig.bus.publish(BrokerEvent(ist(WED, 10, 0), 0, "network", "connection lost", True))
    assert rig.state.state is HALTED
    assert states(await rig.bar(ist(THU, 9, 15), 100_000)) == [("session", ACTIVE)]
