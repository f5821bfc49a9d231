"""Per-bar risk monitoring: drawdown from peak, daily loss, kill switch, flatten on halt.

Gates judge intents; the monitor judges the account after every bar and tightens the trading
state. A new session resumes trading unless the halt came from the kill switch, which only an
operator lifts.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from config.sessions import IST_OFFSET_NS, NS_PER_DAY, local_day
from config.settings import RiskSettings
from engine.bus import EventBus
from engine.events import (
    BarSlice,
    BrokerEvent,
    Order,
    OrderIntent,
    TradingState,
    closing_side,
)
from engine.ports import AccountView
from risk.state import TradingStateMachine

KILL_SWITCH = "kill_switch"
STALE_DATA = "stale_data"
RATIO_EPS = 1e-12  # far below any limit's resolution, far above a ratio's rounding error


class Holdings(AccountView, Protocol):  # the monitor also needs what to flatten
    def holdings(self) -> dict[str, int]: ...


class OrderCanceller(Protocol):
    """The part of a broker the monitor needs: stop what is in flight before flattening."""

    def open_orders(self) -> list[Order]: ...

    async def cancel(self, order_id: str, reason: str = "") -> None: ...


class RiskMonitor:
    def __init__(
        self,
        bus: EventBus,
        settings: RiskSettings,
        account: Holdings,
        state: TradingStateMachine,
        orders: OrderCanceller,
    ) -> None:
        self._bus = bus
        self._orders = orders
        self._account = account
        self.state = state
        self._max_dd = settings.max_drawdown_pct / 100.0
        self._reduce_dd = settings.reduce_drawdown_pct / 100.0
        self._daily = settings.daily_loss_limit_pct / 100.0
        self._flatten = settings.flatten_on_halt
        self.peak = account.equity
        self._day = -1
        self._next_day_ns = -(1 << 62)
        self._day_start = account.equity
        self._last_equity = account.equity
        self._day_level = _level(self._day_start, self._daily)  # equity below: daily-loss check
        self._reduce_level = _level(self.peak, self._reduce_dd)  # equity below: drawdown check

    def restore_day(self, day: int, next_day_ns: int, day_start: float, last_equity: float) -> None:
        """Where the day's loss accounting stood at the last committed bar (crash recovery)."""
        self._day, self._next_day_ns = day, next_day_ns
        self._day_start, self._last_equity = day_start, last_equity
        self._day_level = _level(day_start, self._daily)
        self._reduce_level = _level(self.peak, self._reduce_dd)

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        """Per bar: a few float comparisons against precomputed equity levels; the ratios are
        worked out only when a level is crossed, a day starts, or trading is not ACTIVE."""
        equity = self._account.equity
        new_day = bars.ts_ns >= self._next_day_ns
        if new_day:
            day = local_day(bars.ts_ns)
            self._day = day
            self._next_day_ns = (day + 1) * NS_PER_DAY - IST_OFFSET_NS
            self._day_start = self._last_equity
            self._day_level = _level(self._day_start, self._daily)
        self._last_equity = equity
        if equity > self.peak:
            self.peak = equity
            self._reduce_level = _level(equity, self._reduce_dd)
        if (
            not new_day
            and equity > self._reduce_level
            and equity > self._day_level
            and self.state.state is TradingState.ACTIVE
        ):
            return None
        drawdown = 1.0 - equity / self.peak if self.peak > 0 else 1.0
        day_loss = 1.0 - equity / self._day_start if self._day_start > 0 else 1.0
        return self._evaluate(bars.ts_ns, new_day, drawdown, day_loss)

    async def _evaluate(self, ts_ns: int, new_day: bool, drawdown: float, day_loss: float) -> None:
        state = self.state
        if new_day and state.state != TradingState.ACTIVE and state.reason != KILL_SWITCH:
            await state.resume(ts_ns, "session", "new session")
        # a limit reached exactly counts: 1 - 80000/100000 is 0.19999999999999996 in binary
        drawdown, day_loss = drawdown + RATIO_EPS, day_loss + RATIO_EPS
        if drawdown >= self._max_dd:
            await self.halt(ts_ns, "max_drawdown", f"drawdown {drawdown:.2%} ≥ {self._max_dd:.2%}")
        elif day_loss >= self._daily:
            await self.halt(ts_ns, "daily_loss", f"daily loss {day_loss:.2%} ≥ {self._daily:.2%}")
        elif drawdown >= self._reduce_dd:
            await state.tighten(
                TradingState.REDUCING,
                ts_ns,
                "drawdown",
                f"drawdown {drawdown:.2%} ≥ {self._reduce_dd:.2%}",
            )

    async def halt(self, ts_ns: int, gate: str, reason: str, flatten: bool | None = None) -> None:
        moved = await self.state.tighten(TradingState.HALTED, ts_ns, gate, reason)
        if moved and (self._flatten if flatten is None else flatten):
            await self.flatten(ts_ns, f"flatten on halt: {reason}")

    async def feed_stale(self, ts_ns: int, silent_s: float) -> None:
        """The live feed went quiet without closing: bars built now may miss prices, so no new
        exposure (REDUCING) until ticks flow again (``feed_fresh``), an operator or the next
        session lifts it."""
        await self.state.tighten(
            TradingState.REDUCING, ts_ns, STALE_DATA, f"no market data for {silent_s:.1f}s"
        )

    async def feed_fresh(self, ts_ns: int) -> bool:
        """Ticks flow again: lift the stale-data REDUCING — only if nothing tightened the state
        since (a drawdown REDUCING or any HALTED stays). True if it lifted."""
        state = self.state
        if state.state is TradingState.REDUCING and state.gate == STALE_DATA:
            await state.resume(ts_ns, STALE_DATA, "market data flowing again")
            return True
        return False

    async def kill_switch(self, ts_ns: int, who: str = "operator") -> None:
        await self.state.tighten(TradingState.HALTED, ts_ns, KILL_SWITCH, f"kill switch by {who}")
        self.state.reason = KILL_SWITCH
        await self.flatten(ts_ns, "kill switch")

    async def flatten(self, ts_ns: int, reason: str, only: str | None = None) -> None:
        """Cancel open orders (all, or the symbol's), then close what is held with market
        intents from the "risk" source. Cancelling first matters: an entry still in flight would
        otherwise fill after the flatten, and an exit in flight would double the close and flip
        the position."""
        for order in self._orders.open_orders():
            if only is None or order.symbol == only:
                await self._orders.cancel(order.order_id, reason)
        for symbol, qty in sorted(self._account.holdings().items()):
            if only is not None and symbol != only:
                continue
            await publish_close(
                self._bus, ts_ns, "risk", symbol, qty, reason, f"risk-{ts_ns}-{symbol}"
            )


def _level(base: float, limit: float) -> float:
    """Equity at or below which ``limit`` is reached, nudged up so that the per-bar fast path
    never skips a limit reached exactly (the ratio check then decides)."""
    return base * (1.0 - limit + RATIO_EPS)


async def publish_close(
    bus: EventBus, ts_ns: int, source: str, symbol: str, qty: int, reason: str, intent_id: str
) -> None:
    """Publish the market intent that takes ``qty`` (signed holding) to zero."""
    side = closing_side(qty)
    await bus.publish(
        OrderIntent(ts_ns, bus.next_seq(), intent_id, source, symbol, side, abs(qty), reason=reason)
    )


#: broker events that end the trouble another kind caused: the halt it caused lifts by itself.
#: A reconciliation at start proves the token works: it lifts a token halt a restarted run
#: carried over from before the restart.
CURED_BY = {"token_renewed": "token_expired", "reconciled": "token_expired"}


class BrokerTroubleGuard:
    """Halts trading on broker trouble (expired token, lost connection) instead of erroring in a
    loop, without flattening (the broker may not be able to take the orders). The operator
    resumes once the cause is fixed, or the next session does; trouble that persists halts
    again with the next broker event.

    One cure is the broker's to announce: a new access token (``token_renewed``), or a start
    whose reconciliation with Kite's book succeeded (``reconciled``), lifts a halt whose last
    cause was the expired token — and only that one (a drawdown or kill-switch halt stays)."""

    def __init__(self, monitor: RiskMonitor) -> None:
        self._monitor = monitor

    def on_broker_event(self, event: BrokerEvent) -> Awaitable[None] | None:
        cured = CURED_BY.get(event.kind)
        if cured is not None:
            state = self._monitor.state
            if state.state is TradingState.HALTED and state.gate == f"broker_{cured}":
                return state.resume(event.ts_ns, f"broker_{event.kind}", event.message)
            return None
        if not event.halts:
            return None
        return self._monitor.halt(event.ts_ns, f"broker_{event.kind}", event.message, False)
