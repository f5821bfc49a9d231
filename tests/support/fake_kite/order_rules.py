"""Kite's rules for API orders since 1 April 2026, as the fake Kite enforces them.

Kept apart from ``server.py`` (which only calls in from its order handlers) so the rules read as
one list and can be switched per test:

* **Static IP.** Order requests (place, modify, cancel) from an IP not registered for the app
  are refused with 403 ``PermissionException``; reads and the websocket work from any IP.
  ``ip_whitelist = None`` (the default) accepts every IP; a set of addresses turns the rule on
  (the tests' requests come from 127.0.0.1).
* **10 order requests per second per account.** Place, modify and cancel together, counted by
  arrival in any rolling second; beyond that, 429 (refused requests do not count).
* **Market protection.** MARKET and SL-M orders must carry ``market_protection``: -1 (automatic)
  or 0 < p <= 100; absent or 0 is refused with Kite's message as a 400 ``InputException``.
* **Protected market orders become limits.** Kite executes them as a LIMIT at the protection
  band's edge. ``rest_next(fill_qty)`` makes the next such execution fill only ``fill_qty`` and
  leave the rest resting at that limit, as happens when the book is thin within the band.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

MARKET_PROTECTION_REQUIRED = (
    "Market orders without market protection are not allowed via API. "
    "Please set market protection or use a Limit order."
)
PROTECTED_ORDER_TYPES = ("MARKET", "SL-M")
ORDER_REQUESTS_PER_S = 10
#: the fake's stand-in for Kite's automatic band (Kite tiers it by price; one figure will do)
AUTO_PROTECTION_PCT = 1.0
TICK = 0.05


class OrderRequestRefused(Exception):
    """An order request Kite answers with an error before looking at the order."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def ip_not_allowed_message(ip: str) -> str:
    return (
        f"Order requests are not allowed from IP {ip}: it is not in the IP whitelist of this "
        "app. Add your static IP to the whitelist in your Kite Connect developer profile."
    )


class OrderRules:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ip_whitelist: set[str] | None = None
        self.requests_per_s: int | None = ORDER_REQUESTS_PER_S
        self.throttled = 0  # 429 answers given
        self._clock = clock
        self._arrivals: dict[str, deque[float]] = {}  # account → accepted order requests
        self._resting: deque[int] = deque()  # fill quantities of the next market executions

    # --- switches ---------------------------------------------------------------------------

    def allow_ips(self, ips: Iterable[str] | None) -> None:
        """Only ``ips`` may send order requests (None: any IP)."""
        self.ip_whitelist = None if ips is None else set(ips)

    def rest_next(self, fill_qty: int = 0, times: int = 1) -> None:
        """The next ``times`` protected market executions fill ``fill_qty`` (at most) and leave
        the rest resting as a limit at the protection band's edge."""
        if fill_qty < 0:
            raise ValueError(f"fill_qty must be >= 0, got {fill_qty}")
        self._resting.extend([fill_qty] * times)

    # --- checks -----------------------------------------------------------------------------

    def admit(self, ip: str | None, account: str) -> None:
        """Raise ``OrderRequestRefused`` for an order request Kite would not take at all."""
        if self.ip_whitelist is not None and ip not in self.ip_whitelist:
            raise OrderRequestRefused(403, "PermissionException", ip_not_allowed_message(ip or "?"))
        if self.requests_per_s is None:
            return
        now = self._clock()
        arrivals = self._arrivals.setdefault(account, deque())
        while arrivals and now - arrivals[0] >= 1.0:
            arrivals.popleft()
        if len(arrivals) >= self.requests_per_s:
            self.throttled += 1
            raise OrderRequestRefused(429, "NetworkException", "Too many requests")
        arrivals.append(now)

    @staticmethod
    def market_protection(form: Mapping[str, str], order_type: str) -> float:
        """The order's protection (0 where it has none); refuses a MARKET / SL-M order without
        a valid one, as Kite does."""
        invalid = OrderRequestRefused(400, "InputException", "invalid `market_protection`")
        text = form.get("market_protection") or ""
        try:
            value = float(text) if text else 0.0
        except ValueError:
            raise invalid from None
        if order_type not in PROTECTED_ORDER_TYPES:
            return value
        if value == 0:
            raise OrderRequestRefused(400, "InputException", MARKET_PROTECTION_REQUIRED)
        if value != -1 and not (math.isfinite(value) and 0 < value <= 100):
            raise invalid
        return value

    # --- execution of protected market orders -----------------------------------------------

    @staticmethod
    def protection_limit(buy: bool, last_price: float, protection: float) -> float:
        """The limit Kite gives a protected market order: the band's edge, on the tick, inside
        the band."""
        pct = AUTO_PROTECTION_PCT if protection == -1 else protection
        edge = last_price * (1 + pct / 100 if buy else 1 - pct / 100)
        ticks = math.floor(edge / TICK + 1e-9) if buy else math.ceil(edge / TICK - 1e-9)
        return round(ticks * TICK, 2)

    def fill_now(self, quantity: int) -> int:
        """How much of a protected market order executes at once (the rest rests)."""
        return min(quantity, self._resting.popleft()) if self._resting else quantity
