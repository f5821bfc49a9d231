"""Intraday (MIS) square-off: close every position once the square-off time is reached.

A bar stamped T is known at T + interval, and orders decided on it fill at the next bar's open.
Close orders go out on the bar whose successor contains the square-off time (15:20 by default),
so positions are closed in the bar that contains it, whatever the interval. Once per
session per symbol; switched off with ``square_off_enabled = false`` (``--no-square-off``).
"""

from __future__ import annotations

from collections.abc import Awaitable

from config.sessions import local_day, local_minute
from engine.bus import EventBus
from engine.events import BarSlice
from engine.ports import PendingView
from risk.monitor import Holdings, publish_close


class SquareOff:
    def __init__(
        self, bus: EventBus, account: Holdings, pending: PendingView, square_off_minute: int
    ) -> None:
        self._bus = bus
        self._account = account
        self._pending = pending
        self._minute = square_off_minute
        self._done_day = -1

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        # orders decided now fill in the next bar: square off when that bar contains (or is
        # past) the square-off time — 15:20 exactly for 1- and 5-minute bars, the 15:15–15:30
        # bar's open for 15-minute bars
        if local_minute(bars.ts_ns + 2 * bars.interval_ns) <= self._minute:
            return None
        day = local_day(bars.ts_ns)
        if day == self._done_day:
            return None
        holdings = {
            symbol: net
            for symbol, qty in self._account.holdings().items()
            if (net := qty + self._pending.pending(symbol))
        }
        if not holdings:
            return None
        self._done_day = day
        return self._close_all(bars.ts_ns, holdings)

    async def _close_all(self, ts_ns: int, holdings: dict[str, int]) -> None:
        for symbol, qty in sorted(holdings.items()):
            await publish_close(
                self._bus, ts_ns, "square_off", symbol, qty, "intraday square-off",
                f"sq-{ts_ns}-{symbol}",
            )  # fmt: skip
