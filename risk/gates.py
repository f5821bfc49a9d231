"""Pre-trade gates. Each returns ``None`` to pass or a reason string to deny.

Gates see an ``AccountView`` (positions, prices, equity, pending orders) rather than the
portfolio itself, so they cannot change anything they judge.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from config.sessions import NS_PER_MINUTE, local_minute, minute_of_day
from config.settings import RiskSettings, SessionSettings
from engine.events import OrderIntent, TradingState
from engine.ports import AccountView, PendingView

#: Intents raised by the engine itself to cut exposure; they pass HALTED if they reduce.
SYSTEM_SOURCES = frozenset({"risk", "square_off", "operator"})


def is_reducing(intent: OrderIntent, position: int, pending: int) -> bool:
    """True if the intent moves the (position + pending) toward zero without crossing it."""
    current = position + pending
    after = current + int(intent.side) * intent.qty
    return (
        current != 0 and abs(after) < abs(current) and (after == 0 or (after > 0) == (current > 0))
    )


class Gate(Protocol):
    name: str

    def check(self, intent: OrderIntent, reducing: bool) -> str | None: ...


class TradingStateGate:
    name = "trading_state"

    def __init__(self, state: object) -> None:
        self._machine = state

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        state = self._machine.state  # type: ignore[attr-defined]
        if state == TradingState.ACTIVE:
            return None
        if state == TradingState.REDUCING:
            return None if reducing else "trading state REDUCING: only exposure-reducing orders"
        if reducing and intent.strategy in SYSTEM_SOURCES:
            return None
        return f"trading state HALTED ({self._machine.reason})"  # type: ignore[attr-defined]


class TradingWindowGate:
    """New exposure only if the bar it fills in lies inside [open, square-off] of the session."""

    name = "trading_window"

    def __init__(self, session: SessionSettings, interval_ns: int) -> None:
        self._open = minute_of_day(session.open)
        self._close = minute_of_day(session.close)
        self._stop = (
            minute_of_day(session.square_off) if session.square_off_enabled else self._close
        )
        self._interval = interval_ns
        self._interval_minutes = interval_ns // NS_PER_MINUTE

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        if reducing:
            return None
        minute = local_minute(intent.ts_ns + self._interval)  # earliest fill: next bar's open
        # the bar it fills in must end by the square-off time, or it is squared off at once
        if self._open <= minute and minute + self._interval_minutes <= self._stop:
            return None
        return f"outside the trading window (fill at minute {minute // 60:02d}:{minute % 60:02d})"


class MaxPositionGate:
    name = "max_position"

    def __init__(self, risk: RiskSettings, account: AccountView, pending: PendingView) -> None:
        self._qty = risk.max_position_qty
        self._value = risk.max_position_value
        self._account = account
        self._pending = pending

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        if reducing or (self._qty is None and self._value is None):
            return None
        sym = intent.symbol
        after = abs(
            self._account.qty(sym) + self._pending.pending(sym) + int(intent.side) * intent.qty
        )
        if self._qty is not None and after > self._qty:
            return f"{sym}: position {after} would exceed max_position_qty {self._qty}"
        price = self._account.last_price(sym)
        if self._value is not None and after * price > self._value:
            return (
                f"{sym}: position value {after * price:.2f} would exceed "
                f"max_position_value {self._value:.2f}"
            )
        return None


class GrossExposureGate:
    name = "gross_exposure"

    def __init__(self, risk: RiskSettings, account: AccountView) -> None:
        self._limit = risk.max_gross_exposure
        self._account = account

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        if reducing:
            return None
        price = self._account.last_price(intent.symbol)
        equity = self._account.equity
        after = self._account.gross_exposure() + intent.qty * price
        if equity <= 0 or after > self._limit * equity:
            return f"gross exposure {after:.2f} would exceed {self._limit}× equity {equity:.2f}"
        return None


class OrderRateGate:
    """At most N orders in any 60 s of event time (so replays behave like live)."""

    name = "order_rate"

    def __init__(self, risk: RiskSettings) -> None:
        self._limit = risk.max_orders_per_minute
        self._recent: deque[int] = deque()

    def check(self, intent: OrderIntent, reducing: bool) -> str | None:
        window_start = intent.ts_ns - NS_PER_MINUTE
        recent = self._recent
        while recent and recent[0] <= window_start:
            recent.popleft()
        if len(recent) >= self._limit:
            return f"more than {self._limit} orders per minute"
        recent.append(intent.ts_ns)
        return None
