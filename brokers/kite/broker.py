"""``KiteBroker``: the engine's broker interface over real Zerodha Kite orders.

What it guarantees, and why:

* **Never placed twice.** Every order carries a tag derived from its ``order_id``
  (``order_tags``). A placement whose outcome is unknown (timeout, connection cut, 5xx) is
  followed by a search of the order book for the tag before anything is sent again; at start the
  day's order book is read, so an order re-submitted after a restart binds to the Kite order it
  already has. A placement that stays unknown after the retries is kept open as "unconfirmed"
  (and trading halts on a "network" event) until the order book settles it either way.
* **The bar path is never blocked by the network.** ``submit`` registers the order and returns;
  placement runs in a task, paced by Kite's order limits (10 order requests/s — place, modify
  and cancel together — and 200/min by default; ``order_api``). A 429 Kite answers anyway is
  back-pressure: the same request is sent again after a pause, never as a second order (a 429
  means Kite did not take it, so no tag search is needed).
* **Fills reported exactly once.** Websocket order updates are the fast path; the order book is
  polled every ``poll_interval_s`` while orders are open (and right after a websocket
  reconnect) as the fallback. Both feed the same per-order ``FillLedger``, which reports by
  quantity (trade ids where Kite has them), so overlapping or repeated updates cannot double
  count. An order's fills are published before the update that finishes it.
* **Events in a consistent order, without locks.** Order state changes and the events they
  cause are computed in one synchronous step and queued; one drainer publishes the queue in
  order. So a bus handler may call back into the broker (cancel on a fill) without deadlock, and
  events of one order never overtake each other.
* **Kite trouble becomes events.** Expired token → ``BrokerEvent("token_expired", halts=True)``
  once, and orders are refused plainly afterwards; with the process's ``AccessTokenWatch``
  (``token_watch``) the broker then waits for the token ``trader kite login`` writes, and on it
  reconciles with the order book, resumes polling and announces ``BrokerEvent("token_renewed")``
  (which lifts the halt the expiry caused); persistent network failure →
  ``BrokerEvent("network", halts=True)``; an order request from an IP not registered for the app
  → ``BrokerEvent("ip_not_allowed", halts=True)`` saying where to register it, and the order
  REJECTED, never retried (no retry can fix it; once the operator has registered the IP and
  resumed, orders go out again); an RMS/margin rejection (at placement or after) →
  ``OrderUpdate(REJECTED)`` with Kite's message; a refused cancel/modify → ``"order_error"``.
* **Market orders carry market protection.** MARKET and SL-M orders are sent with
  ``market_protection`` (``KiteSettings.market_protection``: -1, Kite's automatic band, unless
  set), as Kite requires of API orders since 1 April 2026; LIMIT and SL orders without it.

Market remainders. Kite executes a protected market order as a limit at the protection band's
edge, so when the book is thin inside the band part of it (or all of it) rests there as an
open limit. Once the unfilled part of a MARKET order (or of an SL-M order after its trigger) has
rested for ``market_remainder_timeout_s``, the broker cancels it at Kite; what it filled so far
is reported as usual. Then, by one rule, it either re-places the remainder as a new protected
MARKET order working for the same engine order (same order id; the engine sees one order
filling in more pieces), or gives up and reports the order CANCELLED with the quantity filled,
which is what the engine's pending book and portfolio need to be right. It re-places only if
all of these hold, and gives up otherwise, naming the reason:

1. the order has been re-placed fewer than ``market_remainder_replacements`` times (1 by
   default: a market that moved past the band twice is not chased further);
2. nobody asked to cancel the order, the broker is not stopping and can still trade (token);
3. the engine placed it (an order adopted from the book at start has no intent behind it);
4. the trading state (``trading_state``, wired by the live runner to the session's state
   machine) allows it, as the risk chain's trading-state gate would allow a new order: ACTIVE
   yes; REDUCING only if the remainder reduces the account's position in the symbol (read from
   Kite's positions at that moment); HALTED, or no trading state given, no.

Each re-placed remainder carries its own tag (the order's tag for ``<order_id>#<n>``), so it is
never placed twice either: after a restart it is found in the day's order book and adopted.
Both outcomes are announced with a ``BrokerEvent("market_remainder")`` (not halting).

Events are stamped with wall-clock time (``clock``): a live broker reports when it learnt a fact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from brokers.costs import CostModel, OrderCosts
from brokers.kite.auth import KiteCredentials
from brokers.kite.errors import (
    KiteError,
    KiteInputError,
    KiteIpNotAllowedError,
    KiteRateLimitError,
    KiteRetryableError,
    KiteTokenError,
)
from brokers.kite.order_api import KiteOrderApi, OrderRateLimit
from brokers.kite.order_params import (
    PROTECTED_TYPES,
    VARIETY_REGULAR,
    OrderParamsError,
    check_market_protection,
    kite_order_params,
)
from brokers.kite.order_state import FillLedger, KiteOrderSnapshot, KiteTrade
from brokers.kite.order_tags import DEFAULT_TAG_PREFIX, check_tag_prefix, order_tag
from brokers.kite.rate_limit import RetryPolicy, with_retries
from brokers.kite.settings import KiteSettings
from brokers.kite.ticker_client import TickerClient
from brokers.kite.token_watch import AccessTokenWatch
from config.redact import scrub
from engine.bus import EventBus
from engine.events import (
    BrokerEvent,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    TradingState,
)
from engine.ports import Broker

log = logging.getLogger(__name__)

DEFAULT_TICK = 0.05
ADOPTED_PREFIX = "kite-"


@dataclass
class _Tracked:
    """One order this broker is responsible for, and what has been reported about it.

    An order is worked by one Kite order at a time: the first, then possibly re-placed market
    remainders ("legs"). ``tag``, ``kite_id`` and ``ledger`` belong to the current one."""

    order: Order
    tag: str
    kite_id: str | None = None
    finished: bool = False
    cancel_reason: str | None = None
    cancel_sent: bool = False
    unconfirmed_since: float | None = None  # monotonic time placement gave up, outcome unknown
    last_published: tuple[OrderStatus, int] | None = None
    ledger: FillLedger = field(default_factory=FillLedger)
    # market remainders (module docstring)
    leg: int = 0  # 0: the first Kite order; n: the n-th re-placed remainder
    leg_qty: int = 0  # quantity of the current re-placed remainder
    earlier_filled: int = 0  # filled by the Kite orders of earlier legs
    retired: set[str] = field(default_factory=set)  # their Kite ids: late news is ignored
    resting_since: float | None = None  # monotonic time a market order was first seen resting
    expiring: bool = False  # the broker cancels the resting remainder (the engine did not ask)
    expiry_sent: bool = False
    leg_closed: bool = False  # that cancel is done: the remainder rule decides what follows

    @property
    def filled(self) -> int:
        return self.earlier_filled + self.ledger.reported_qty


class KiteBroker(Broker):
    def __init__(
        self,
        bus: EventBus,
        settings: KiteSettings,
        credentials: KiteCredentials,
        *,
        cost_model: CostModel,
        product: str = "MIS",
        exchange: str = "NSE",
        poll_interval_s: float = 3.0,
        order_rate_limit: OrderRateLimit | None = None,
        tag_namespace: str = "",
        tag_prefix: str = DEFAULT_TAG_PREFIX,
        ticker: TickerClient | None = None,
        run_ticker: bool = True,
        market_protection: float | None = None,
        trading_state: Callable[[], TradingState] | None = None,
        api: KiteOrderApi | None = None,
        clock: Callable[[], int] = time.time_ns,
        token_watch: AccessTokenWatch | None = None,
    ) -> None:
        """``tag_namespace`` (the run id, say) keeps tags unique when order ids repeat across
        runs on one day. ``ticker``: a websocket client shared with the market-data feed (its
        owner runs it; order updates are routed here); without one, and with ``run_ticker``,
        the broker runs its own. ``market_protection`` (sent with MARKET/SL-M orders) overrides
        ``settings.market_protection``. ``trading_state`` tells the remainder rule the session's
        trading state (also settable later, as the attribute of that name). ``token_watch``:
        the process's holder of the daily access token (see ``token_watch``); the broker
        reports a rejected token to it and renews itself when a new one is picked up."""
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        if market_protection is None:
            market_protection = settings.market_protection
        self.market_protection = check_market_protection(market_protection)
        self.trading_state = trading_state
        self._bus = bus
        self.settings = settings
        self._credentials = credentials
        self._costs = OrderCosts(cost_model)
        self.product = product
        self.exchange = exchange
        self.poll_interval_s = poll_interval_s
        self._namespace = tag_namespace
        self._prefix = check_tag_prefix(tag_prefix)
        self._clock = clock
        self.token_watch = token_watch
        if token_watch is not None:
            credentials = self._credentials = token_watch.credentials
            token_watch.on_expired.append(self._token_rejected)
            token_watch.on_renewed.append(self.renew)
        self._api = api or KiteOrderApi(settings, credentials, order_rate_limit)
        self._retry = RetryPolicy(
            settings.max_retries, settings.backoff_base_s, settings.backoff_max_s
        )
        self._settle_s = 2 * settings.request_timeout_s
        self._own_ticker = ticker is None and run_ticker
        self.ticker = ticker
        if self.ticker is None and run_ticker:
            self.ticker = TickerClient(
                settings,
                credentials,
                backoff_base_s=settings.backoff_base_s,
                backoff_max_s=settings.backoff_max_s,
                token_watch=token_watch,
            )
        if self.ticker is not None:
            self.ticker.on_order_update = self.on_order_update
            if self._own_ticker:
                self.ticker.on_connect = self._on_ticker_connect

        self._orders: dict[str, _Tracked] = {}  # by engine order_id, in submission order
        self._by_kite: dict[str, _Tracked] = {}
        self._by_tag: dict[str, _Tracked] = {}
        self._duplicates: set[str] = set()  # Kite orders carrying a tag already bound
        self._start_book: dict[str, KiteOrderSnapshot] = {}  # our tags in the day's book
        self._tick_sizes: dict[str, float] | None = None
        self._positions: dict[str, int] = {}
        self._reconciled = False
        self._started = False
        self._stopping = False
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._outbox: deque[Any] = deque()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._poll_task: asyncio.Task[None] | None = None
        self._ticker_task: asyncio.Task[None] | None = None
        self._token_dead: str | None = None
        self._network_down = False
        self._network_failures = 0
        self.errors: list[str] = []  # failures inside background tasks (also logged)

    # --- the Broker interface ----------------------------------------------------------------

    async def start(self) -> None:
        """Load instruments, reconcile with the account, then start the order-update paths.

        Kite trouble here is reported as events (and ``halted``) rather than raised, like
        everywhere else: the daemon stays up and shows the operator what happened."""
        if self._started:
            return
        self._started = True
        try:
            await self._load_instruments()
            await self._reconcile()
        except KiteError as exc:
            await self._report_failure(exc, "start")
        finally:
            self._ready.set()
        if self._token_dead is not None:
            return
        await self._start_loops()

    async def _start_loops(self) -> None:
        """The poll loop and (if the broker owns it) the order-update websocket; each started
        unless already running (a renewal after a dead token starts what ended)."""
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = asyncio.create_task(self._poll_loop(), name="kite-broker-poll")
            self._loops.append(self._poll_task)
        if self._own_ticker and self.ticker is not None:
            if self._ticker_task is None or self._ticker_task.done():
                self._ticker_task = asyncio.create_task(
                    self._run_ticker(), name="kite-broker-ticker"
                )
                self._loops.append(self._ticker_task)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.ticker.connected.wait(), min(2.0, self.settings.request_timeout_s)
                )

    async def renew(self, credentials: KiteCredentials) -> None:
        """A new access token (``trader kite login`` while the daemon runs): use it, reconcile
        with Kite's order book and positions as at a start, settle the orders still open from
        the book, restart polling, and announce ``token_renewed``. A token Kite rejects as
        well is reported as expired again (and the watch waits for another)."""
        if self._stopping:
            return
        self._credentials = credentials
        self._api.use_credentials(credentials)
        self._token_dead = None
        self._network_ok()
        try:
            summary = await self._reconcile(announce=False)
        except KiteError as exc:
            await self._report_failure(exc, "reconcile with a new access token")
            return
        await self._event("token_renewed", f"new Kite access token accepted; {summary}")
        await self.poll_once()
        await self._start_loops()

    async def check_token(self) -> bool:
        """One cheap read (the profile) to learn before a session whether today's token works;
        a rejection is reported like any other (halt, alert, wait for a new token)."""
        if self._token_dead is not None:
            return False
        try:
            await self._api.profile()
        except KiteTokenError as exc:
            await self._token_expired(exc)
            return False
        except KiteError as exc:
            await self._report_failure(exc, "token check", retried=False)
        return True

    async def stop(self) -> None:
        """Wait briefly for placements in flight, then stop polling and the websocket. Open
        orders stay at Kite; their tags let the next start find them."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(
                list(self._tasks), timeout=self.settings.request_timeout_s
            )
            for task in pending:
                task.cancel()
        if self._own_ticker and self.ticker is not None:
            await self.ticker.stop()
        for task in self._loops:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()

    async def submit(self, order: Order) -> None:
        """Register the order and place it in the background; idempotent on ``order_id``."""
        if order.order_id in self._orders:
            return
        tag = self.tag_for(order.order_id)
        adopted = self._by_tag.get(tag)
        if adopted is not None:
            # adopted at start under a provisional id: it is this order; keep tracking it
            del self._orders[adopted.order.order_id]
            adopted.order = order
            self._orders[order.order_id] = adopted
            if adopted.finished and adopted.last_published is not None:
                # it finished before the engine claimed it: the engine still needs the news
                status, _ = adopted.last_published
                self._queue_update(adopted, status, "finished at Kite before re-submission")
                await self._drain()
            return
        tracked = _Tracked(order, tag)
        self._orders[order.order_id] = tracked
        self._by_tag[tag] = tracked
        self._spawn(self._place(tracked), f"place {order.order_id}")

    def booked(self, order_id: str, qty: int, value: float, costs: float) -> None:
        """The part of a restored order the engine booked before the restart: the order book
        will show it executed, and it is not reported again (nor charged again)."""
        tracked = self._orders.get(order_id)
        if tracked is None or qty <= 0:
            return
        tracked.ledger.booked(qty, value)
        self._costs.booked(order_id, value, costs)

    async def cancel(self, order_id: str, reason: str = "") -> None:
        """Ask Kite to cancel; the CANCELLED update follows from Kite's answer (usually before
        this returns). An order still being placed is cancelled as soon as it is placed."""
        tracked = self._orders.get(order_id)
        if tracked is None or tracked.finished:
            return
        tracked.cancel_reason = reason or "cancelled by the engine"
        if tracked.kite_id is not None:
            tracked.cancel_sent = True
            await self._cancel_at_kite(tracked)

    def open_orders(self) -> list[Order]:
        return [t.order for t in self._orders.values() if not t.finished]

    # --- more than the interface ---------------------------------------------------------

    def tag_for(self, order_id: str) -> str:
        return order_tag(order_id, self._namespace, self._prefix)

    def account_positions(self) -> dict[str, int]:
        """Net quantity per symbol at the account (this exchange and product, non-zero), as
        read at start or by ``refresh_positions``: the daemon compares it to its own book."""
        return dict(self._positions)

    @property
    def halted(self) -> str | None:
        """Why the broker cannot trade (expired token), or ``None``."""
        return self._token_dead

    def kite_order_id(self, order_id: str) -> str | None:
        tracked = self._orders.get(order_id)
        return tracked.kite_id if tracked else None

    async def refresh_positions(self) -> dict[str, int]:
        rows = await with_retries(self._api.positions, self._retry)
        self._positions = self._net_positions(rows)
        return self.account_positions()

    async def modify(
        self,
        order_id: str,
        *,
        qty: int | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
        order_type: OrderType | None = None,
    ) -> bool:
        """Change an open order at Kite; returns whether Kite accepted. A refusal is reported as
        ``BrokerEvent("order_error")``. (The engine's pending book does not see modifications.)"""
        tracked = self._orders.get(order_id)
        if tracked is None or tracked.finished or tracked.kite_id is None:
            return False
        if tracked.leg > 0:
            await self._event(
                "order_error",
                f"modify {order_id} refused: its remainder is being worked as a re-placed "
                "market order",
            )
            return False
        changes: dict[str, Any] = {}
        if qty is not None:
            changes["qty"] = qty
        if limit_price is not None:
            changes["limit_price"] = limit_price
        if stop_price is not None:
            changes["stop_price"] = stop_price
        if order_type is not None:
            changes["order_type"] = order_type
        new = tracked.order._replace(**changes)
        try:
            params = self._params(new, tracked.tag)
        except OrderParamsError as exc:
            await self._event("order_error", f"modify {order_id} refused: {exc}")
            return False
        kite_changes = {
            key: params[key]
            for key in ("quantity", "price", "trigger_price", "order_type", "market_protection")
            if key in params
        }
        kite_id = tracked.kite_id
        try:
            await with_retries(
                lambda: self._api.modify_order(VARIETY_REGULAR, kite_id, **kite_changes),
                self._retry,
            )
        except KiteError as exc:
            await self._report_failure(exc, f"modify {order_id}")
            return False
        tracked.order = new
        if new.order_type not in PROTECTED_TYPES:
            tracked.resting_since = None  # a limit rests by design
        return True

    async def poll_once(self) -> None:
        """Read the order book once and apply it to every order not yet finished."""
        live = [t for t in self._orders.values() if not t.finished]
        if not live or self._token_dead is not None:
            return
        try:
            rows = await self._api.orders()
        except KiteError as exc:
            await self._report_failure(exc, "poll the order book", retried=False)
            return
        self._network_ok()
        book = [KiteOrderSnapshot.parse(row) for row in rows]
        by_id = {snap.kite_order_id: snap for snap in book}
        by_tag = {tag: snap for snap in book for tag in snap.tags}
        for tracked in live:
            snap = by_id.get(tracked.kite_id or "") or by_tag.get(tracked.tag)
            if snap is not None:
                await self._apply(snap)
            elif tracked.kite_id is not None:
                await self._refresh(tracked)  # not in the book (should not happen): ask it
            elif tracked.unconfirmed_since is not None:
                waited = time.monotonic() - tracked.unconfirmed_since
                if waited >= self._settle_s:
                    await self._finish(
                        tracked,
                        OrderStatus.REJECTED,
                        "not placed: Kite's order book has no order with tag "
                        f"{tracked.tag} after the placement failed",
                    )
        self._expire_resting_remainders()

    def on_order_update(self, raw: dict[str, Any]) -> None:
        """Websocket order update (``TickerClient.on_order_update``). Applied in a task so the
        websocket reader (maybe shared with market data) never waits on REST calls."""
        if isinstance(raw, dict):
            self._spawn(self._apply(KiteOrderSnapshot.parse(raw)), "order update")

    async def wait_idle(self) -> None:
        """Until placements and update processing started so far are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- placement ---------------------------------------------------------------------------

    async def _place(self, tracked: _Tracked) -> None:
        await self._ready.wait()
        known = self._start_book.get(tracked.tag)
        if known is not None:  # placed before a restart: never place again
            await self._apply(known)
            return
        if tracked.finished or tracked.kite_id is not None:
            return
        if tracked.leg > 0 and tracked.cancel_reason is not None:  # cancelled before re-placing
            await self._finish(tracked, OrderStatus.CANCELLED, tracked.cancel_reason)
            return
        if self._token_dead is not None:
            await self._finish(tracked, OrderStatus.REJECTED, f"not placed: {self._token_dead}")
            return
        try:
            params = self._params(self._working_order(tracked), tracked.tag)
        except OrderParamsError as exc:
            await self._finish(tracked, OrderStatus.REJECTED, str(exc))
            return
        # without a start-of-day order book, an order may already be there: look first
        ambiguous = not self._reconciled
        attempt = 0
        while True:
            sending = False
            try:
                if ambiguous:
                    found = await self._find_by_tag(tracked.tag)
                    self._network_ok()
                    if found is not None:
                        await self._apply(found)
                        return
                sending = True
                kite_id = await self._api.place_order(params)
            except KiteTokenError as exc:
                await self._token_expired(exc)
                if ambiguous:
                    tracked.unconfirmed_since = time.monotonic()
                else:
                    await self._finish(tracked, OrderStatus.REJECTED, f"not placed: {exc}")
                return
            except KiteRetryableError as exc:
                if sending and not isinstance(exc, KiteRateLimitError):
                    ambiguous = True  # it may have reached Kite: look before sending again
                if attempt >= self._retry.max_retries:
                    await self._placement_failed(tracked, exc, ambiguous, attempt + 1)
                    return
                wait = self._retry.delay(attempt, exc.retry_after_s)
                log.warning("order %s: %s; retrying in %.2fs", tracked.order.order_id, exc, wait)
                attempt += 1
                await asyncio.sleep(wait)
                continue
            except KiteIpNotAllowedError as exc:  # the operator's to fix: halt, never retry
                await self._ip_not_allowed(exc, f"order {tracked.order.order_id}")
                await self._finish(tracked, OrderStatus.REJECTED, str(exc))
                return
            except KiteError as exc:
                if sending:  # refused at placement (RMS, margin, market closed): a rejection
                    await self._finish(tracked, OrderStatus.REJECTED, str(exc))
                else:  # the tag search failed: the order may be at Kite
                    tracked.unconfirmed_since = time.monotonic()
                    await self._event(
                        "order_error", f"order {tracked.order.order_id}: tag search failed: {exc}"
                    )
                return
            self._network_ok()
            await self._bind(tracked, kite_id)
            return

    async def _find_by_tag(self, tag: str) -> KiteOrderSnapshot | None:
        for row in await self._api.orders():
            snap = KiteOrderSnapshot.parse(row)
            if tag in snap.tags:
                return snap
        return None

    async def _placement_failed(
        self, tracked: _Tracked, exc: KiteError, ambiguous: bool, attempts: int
    ) -> None:
        order_id = tracked.order.order_id
        if ambiguous:
            tracked.unconfirmed_since = time.monotonic()
            message = (
                f"order {order_id} (tag {tracked.tag}) may or may not have reached Kite after "
                f"{attempts} attempts ({exc}); the order book will settle it"
            )
        else:
            await self._finish(tracked, OrderStatus.REJECTED, f"not placed: {exc}")
            message = f"order {order_id} not placed after {attempts} attempts: {exc}"
        await self._network_failed(message, force=True)

    def _working_order(self, tracked: _Tracked) -> Order:
        """What the current Kite order asks for: the order itself, or a re-placed remainder —
        a protected MARKET order for what is left (an SL-M's trigger has fired by then)."""
        if tracked.leg == 0:
            return tracked.order
        return tracked.order._replace(qty=tracked.leg_qty, order_type=OrderType.MARKET)

    def _params(self, order: Order, tag: str) -> dict[str, Any]:
        tick = DEFAULT_TICK
        if self._tick_sizes is not None:
            if order.symbol not in self._tick_sizes:
                raise OrderParamsError(
                    f"order {order.order_id}: {order.symbol!r} is not an {self.exchange} "
                    "instrument at Kite"
                )
            tick = self._tick_sizes[order.symbol] or DEFAULT_TICK
        return kite_order_params(
            order,
            exchange=self.exchange,
            product=self.product,
            tag=tag,
            tick_size=tick,
            market_protection=self.market_protection,
        )

    async def _bind(self, tracked: _Tracked, kite_id: str) -> None:
        """Kite acknowledged the placement: OPEN (unless an update already said more)."""
        if not self._link(tracked, kite_id) or tracked.finished:
            await self._drain()
            return
        if tracked.last_published is None:
            self._queue_update(tracked, OrderStatus.OPEN, "")
        await self._drain()
        await self._cancel_if_asked(tracked)

    async def _cancel_if_asked(self, tracked: _Tracked) -> None:
        """A cancel asked for while the order was being placed is sent once it is placed."""
        if tracked.cancel_reason is None or tracked.cancel_sent or tracked.finished:
            return
        if tracked.kite_id is not None:
            tracked.cancel_sent = True
            await self._cancel_at_kite(tracked)

    def _link(self, tracked: _Tracked, kite_id: str) -> bool:
        if kite_id in tracked.retired:  # an earlier leg's late news: already accounted for
            return False
        if tracked.kite_id is None:
            tracked.kite_id = kite_id
            tracked.unconfirmed_since = None
            self._by_kite[kite_id] = tracked
            return True
        if tracked.kite_id != kite_id:
            if kite_id in self._duplicates:
                return False
            self._duplicates.add(kite_id)
            message = (
                f"Kite order {kite_id} carries the tag of order {tracked.order.order_id}, which "
                f"is Kite order {tracked.kite_id}: ignored; check the account for a duplicate"
            )
            log.error("%s", message)
            self._queue_event("order_error", message)
            return False
        return True

    # --- order state → events --------------------------------------------------------------

    def _tracked_for(self, snap: KiteOrderSnapshot) -> _Tracked | None:
        tracked = self._by_kite.get(snap.kite_order_id)
        if tracked is not None:
            return tracked
        for tag in snap.tags:
            tracked = self._by_tag.get(tag)
            if tracked is not None:
                return tracked
        return None

    async def _apply(self, snap: KiteOrderSnapshot) -> None:
        """Bring one order's reports up to Kite's state ``snap`` (any source, any order)."""
        tracked = self._tracked_for(snap)
        if tracked is None:
            return  # not ours
        if not self._link(tracked, snap.kite_order_id) or tracked.finished:
            await self._drain()  # a duplicate (reported) or done
            return
        trades: list[KiteTrade] = []
        if snap.executed_qty > tracked.ledger.reported_qty:
            trades = await self._trades(snap.kite_order_id)
        # from here on synchronous: the ledger and the queued events change together
        if tracked.finished or tracked.kite_id != snap.kite_order_id:  # done, or leg retired
            return
        self._advance(tracked, snap, trades)
        await self._drain()
        if tracked.leg_closed:
            tracked.leg_closed = False
            await self._after_remainder(tracked)
            return
        await self._cancel_if_asked(tracked)

    def _advance(self, tracked: _Tracked, snap: KiteOrderSnapshot, trades: list[KiteTrade]) -> None:
        ledger = tracked.ledger
        executions = ledger.record_trades(trades)
        catch_up = ledger.catch_up(snap.executed_qty, snap.average_price)
        if catch_up is not None:
            executions.append(catch_up)
        order = tracked.order
        for execution in executions:
            self._outbox.append(
                Fill(
                    self._clock(),
                    self._bus.next_seq(),
                    order.order_id,
                    order.symbol,
                    order.side,
                    execution.qty,
                    execution.price,
                    self._costs(order.order_id, order.side, execution.qty, execution.price),
                    order.reason,
                    execution.trade_id,
                )
            )
        if snap.finished:
            ours = tracked.expiring and tracked.cancel_reason is None  # the broker's cancel
            if ours and snap.status == OrderStatus.CANCELLED:
                self._close_leg(tracked, snap.kite_order_id)
                return
            tracked.finished = True
            self._queue_update(tracked, snap.status, self._final_reason(tracked, snap))
            return
        if (
            snap.kite_status == "OPEN"
            and tracked.resting_since is None
            and self._working_order(tracked).order_type in PROTECTED_TYPES
        ):
            tracked.resting_since = time.monotonic()
        if tracked.last_published != (OrderStatus.OPEN, tracked.filled):
            self._queue_update(tracked, OrderStatus.OPEN, "")

    @staticmethod
    def _final_reason(tracked: _Tracked, snap: KiteOrderSnapshot) -> str:
        if snap.status == OrderStatus.REJECTED:
            return snap.message or "rejected by Kite"
        if snap.status == OrderStatus.CANCELLED:
            return tracked.cancel_reason or snap.message or "cancelled at Kite"
        return ""

    async def _trades(self, kite_order_id: str) -> list[KiteTrade]:
        try:
            rows = await self._api.order_trades(kite_order_id)
        except KiteTokenError as exc:
            await self._token_expired(exc)
        except KiteError as exc:  # the order book's figures will do
            log.warning("trades of Kite order %s unavailable: %s", kite_order_id, exc)
        else:
            return [KiteTrade.parse(row) for row in rows]
        return []

    def _queue_update(self, tracked: _Tracked, status: OrderStatus, reason: str) -> None:
        filled = tracked.filled
        tracked.last_published = (status, filled)
        order = tracked.order
        self._outbox.append(
            OrderUpdate(
                self._clock(),
                self._bus.next_seq(),
                order.order_id,
                order.symbol,
                status,
                filled,
                reason,
            )
        )

    def _queue_event(self, kind: str, message: str, halts: bool = False) -> None:
        text = scrub(message)
        self._outbox.append(BrokerEvent(self._clock(), self._bus.next_seq(), kind, text, halts))

    async def _drain(self) -> None:
        """Publish queued events in order. One drainer at a time: events queued by a nested
        call (a handler calling back into the broker) are published by the outer drainer."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._outbox:
                await self._bus.publish(self._outbox.popleft())
        finally:
            self._draining = False

    async def _finish(self, tracked: _Tracked, status: OrderStatus, reason: str) -> None:
        if tracked.finished:
            return
        tracked.finished = True
        self._queue_update(tracked, status, reason)
        await self._drain()

    # --- cancel and refresh ------------------------------------------------------------------

    async def _cancel_at_kite(self, tracked: _Tracked) -> bool:
        """Cancel the current Kite order and apply its state; False if the request failed."""
        kite_id = tracked.kite_id
        if kite_id is None or tracked.finished:
            return True
        try:
            await with_retries(
                lambda: self._api.cancel_order(VARIETY_REGULAR, kite_id), self._retry
            )
        except KiteInputError as exc:  # finished meanwhile (filled, say): the refresh tells
            log.info("cancel of %s refused: %s", tracked.order.order_id, exc)
        except KiteError as exc:
            await self._report_failure(exc, f"cancel {tracked.order.order_id}")
            return False
        await self._refresh(tracked)
        return True

    # --- market remainders (module docstring) -------------------------------------------------

    def _expire_resting_remainders(self) -> None:
        """Cancel market orders whose unfilled part has rested longer than allowed."""
        now = time.monotonic()
        timeout = self.settings.market_remainder_timeout_s
        for tracked in self._orders.values():
            if (
                tracked.finished
                or tracked.kite_id is None
                or tracked.resting_since is None
                or tracked.expiry_sent
                or tracked.cancel_reason is not None
                or now - tracked.resting_since < timeout
            ):
                continue
            tracked.expiring = tracked.expiry_sent = True
            self._spawn(
                self._cancel_remainder(tracked), f"cancel the remainder of {tracked.order.order_id}"
            )

    async def _cancel_remainder(self, tracked: _Tracked) -> None:
        if not await self._cancel_at_kite(tracked):
            tracked.expiry_sent = False  # try again at the next poll

    def _close_leg(self, tracked: _Tracked, kite_id: str) -> None:
        """The broker's cancel of a resting remainder is done (its fills are queued): retire
        the Kite order, so nothing more is read from it, and let the rule decide."""
        tracked.retired.add(kite_id)
        tracked.earlier_filled += tracked.ledger.reported_qty
        tracked.ledger = FillLedger()
        tracked.kite_id = None
        tracked.resting_since = None
        tracked.expiring = tracked.expiry_sent = False
        tracked.leg_closed = True

    async def _after_remainder(self, tracked: _Tracked) -> None:
        order = tracked.order
        remaining = order.qty - tracked.filled
        summary = (
            f"order {order.order_id} ({order.side.name} {order.qty} {order.symbol}): "
            f"{tracked.filled} filled; the remaining {remaining} rested at the market-protection "
            f"limit for {self.settings.market_remainder_timeout_s:g}s and was cancelled"
        )
        why_not = await self._why_not_replace(tracked, remaining)
        if why_not is not None:
            self._queue_event("market_remainder", f"{summary}; not re-placed: {why_not}")
            tracked.finished = True
            reason = tracked.cancel_reason or f"{summary}; not re-placed: {why_not}"
            self._queue_update(tracked, OrderStatus.CANCELLED, reason)
            await self._drain()
            return
        tracked.leg += 1
        tracked.leg_qty = remaining
        tracked.tag = self.tag_for(f"{order.order_id}#{tracked.leg}")
        tracked.cancel_sent = False
        self._by_tag[tracked.tag] = tracked
        await self._event(
            "market_remainder",
            f"{summary}; re-placing it as a protected market order ({tracked.leg} of at most "
            f"{self.settings.market_remainder_replacements} re-placement(s))",
        )
        self._spawn(self._place(tracked), f"re-place the remainder of {order.order_id}")

    async def _why_not_replace(self, tracked: _Tracked, remaining: int) -> str | None:
        """None if the remainder rule allows re-placing ``remaining``, else why not."""
        order = tracked.order
        allowed = self.settings.market_remainder_replacements
        if tracked.leg >= allowed:
            return (
                f"re-placed {tracked.leg} time(s) already (market_remainder_replacements={allowed})"
            )
        if tracked.cancel_reason is not None:
            return f"the order was cancelled ({tracked.cancel_reason})"
        if self._stopping or self._token_dead is not None:
            return "the broker is stopping or cannot trade"
        if order.order_id.startswith(ADOPTED_PREFIX):
            return "the order was adopted from Kite's order book, not placed by this engine"
        state = self.trading_state() if self.trading_state is not None else None
        if state is None:
            return "no trading state to check against"
        if state == TradingState.ACTIVE:
            return None
        if state != TradingState.REDUCING:
            return f"trading is {state}"
        try:
            held = (await self.refresh_positions()).get(order.symbol, 0)
        except KiteError as exc:
            return f"trading is REDUCING and the account's positions could not be read ({exc})"
        if held * int(order.side) < 0 and remaining <= abs(held):
            return None
        return (
            f"trading is REDUCING and {order.side.name} {remaining} would not reduce the "
            f"account's {order.symbol} position ({held:+d})"
        )

    async def _refresh(self, tracked: _Tracked) -> None:
        if tracked.kite_id is None:
            return
        try:
            history = await self._api.order_history(tracked.kite_id)
        except KiteError as exc:
            await self._report_failure(exc, f"refresh {tracked.order.order_id}", retried=False)
            return
        if history:
            await self._apply(KiteOrderSnapshot.parse(history[-1]))

    # --- start: instruments, reconciliation ---------------------------------------------------

    async def _load_instruments(self) -> None:
        rows = await with_retries(lambda: self._api.instruments(self.exchange), self._retry)
        self._tick_sizes = {
            str(row["tradingsymbol"]): float(row.get("tick_size") or DEFAULT_TICK) for row in rows
        }

    def _ours(self, snap: KiteOrderSnapshot) -> str | None:
        return next((tag for tag in snap.tags if tag.startswith(self._prefix)), None)

    async def _reconcile(self, announce: bool = True) -> str:
        """Read the day's order book and positions; adopt our open orders nobody re-submitted.
        Announced as ``reconciled`` unless ``announce`` is False (the caller words it)."""
        rows = await with_retries(self._api.orders, self._retry)
        book = [KiteOrderSnapshot.parse(row) for row in rows]
        mine = [(tag, snap) for snap in book if (tag := self._ours(snap)) is not None]
        self._start_book = {tag: snap for tag, snap in mine}
        adopted: list[_Tracked] = []
        expected = 0
        for tag, snap in mine:
            if tag in self._by_tag:
                expected += 1  # re-submitted before start: its placement binds to it
                continue
            if snap.finished:
                continue
            tracked = _Tracked(self._adopted_order(snap), tag)
            self._orders[tracked.order.order_id] = tracked
            self._by_tag[tag] = tracked
            adopted.append(tracked)
        positions = await with_retries(self._api.positions, self._retry)
        self._positions = self._net_positions(positions)
        self._reconciled = True
        finished = sum(1 for _, snap in mine if snap.finished)
        held = ", ".join(f"{s} {q:+d}" for s, q in sorted(self._positions.items())) or "none"
        adopted_text = "; ".join(
            f"{t.order.order_id} {t.order.side.name} {t.order.qty} {t.order.symbol} "
            f"{t.order.order_type}"
            for t in adopted
        )
        summary = (
            f"Kite order book: {len(mine)} order(s) with our tag today, {finished} finished, "
            f"{expected} matched to re-submitted orders, {len(adopted)} open adopted"
            + (f" ({adopted_text})" if adopted else "")
            + f"; positions {self.exchange} {self.product}: {held}"
        )
        if announce:
            await self._event("reconciled", summary)
        for tracked in adopted:  # report what they have done so far (fills, OPEN)
            await self._apply(self._start_book[tracked.tag])
        return summary

    def _adopted_order(self, snap: KiteOrderSnapshot) -> Order:
        try:
            kind = OrderType(snap.order_type)
        except ValueError:
            kind = OrderType.LIMIT
        return Order(
            self._clock(),
            self._bus.next_seq(),
            f"{ADOPTED_PREFIX}{snap.kite_order_id}",
            "",
            snap.symbol,
            snap.side,
            snap.quantity,
            kind,
            snap.price if snap.price > 0 else float("nan"),
            snap.trigger_price if snap.trigger_price > 0 else float("nan"),
            OrderStatus.OPEN,
            "adopted from the Kite order book at start",
        )

    def _net_positions(self, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        net: dict[str, int] = {}
        for row in rows.get("net", []):
            if row.get("exchange") != self.exchange or row.get("product") != self.product:
                continue
            symbol = str(row.get("tradingsymbol"))
            net[symbol] = net.get(symbol, 0) + int(row.get("quantity") or 0)
        return {symbol: qty for symbol, qty in net.items() if qty != 0}

    # --- background loops ---------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self._stopping and self._token_dead is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            if self._stopping or self._token_dead is not None:
                return
            try:
                await self.poll_once()
            except Exception as exc:  # a handler failed: report, keep polling
                self._background_error("poll", exc)

    async def _run_ticker(self) -> None:
        assert self.ticker is not None
        try:
            await self.ticker.run()
        except KiteTokenError as exc:
            await self._token_expired(exc)
        except ConnectionError as exc:
            await self._network_failed(f"order-update websocket: {exc}", force=True)

    def _on_ticker_connect(self, connects: int) -> None:
        if connects > 1:
            self._wake.set()  # updates may have been missed while disconnected: poll now

    def _spawn(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(self._guarded(coroutine, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # no caller to raise to: record and log
            self._background_error(what, exc)

    def _background_error(self, what: str, exc: BaseException) -> None:
        text = f"{what}: {type(exc).__name__}: {scrub(str(exc))}"
        self.errors.append(text)
        log.error("kite broker: %s", text, exc_info=exc)

    # --- trouble → events ---------------------------------------------------------------------

    async def _event(self, kind: str, message: str, halts: bool = False) -> None:
        self._queue_event(kind, message, halts)
        await self._drain()

    async def _token_expired(self, exc: KiteTokenError) -> None:
        used = self._credentials.access_token
        await self._token_rejected(str(exc))
        if self.token_watch is not None:
            await self.token_watch.expired(used, str(exc))

    async def _token_rejected(self, reason: str) -> None:
        """Stop trading on a dead token (reported here or by another client to the watch)."""
        if self._token_dead is not None:
            return
        self._token_dead = reason
        self._wake.set()
        await self._event("token_expired", reason, halts=True)

    async def _ip_not_allowed(self, exc: KiteIpNotAllowedError, what: str) -> None:
        """Halt on every refused order request: halting is idempotent, and trouble that is
        still there after the operator resumed halts again."""
        await self._event("ip_not_allowed", f"{what}: {exc}", halts=True)

    async def _network_failed(self, message: str, force: bool = False) -> None:
        self._network_failures += 1
        if self._network_down:
            return
        if force or self._network_failures > self.settings.max_retries:
            self._network_down = True
            await self._event("network", message, halts=True)

    def _network_ok(self) -> None:
        self._network_failures = 0
        self._network_down = False

    async def _report_failure(self, exc: KiteError, what: str, retried: bool = True) -> None:
        """One place deciding which event a failed operation becomes."""
        if isinstance(exc, KiteTokenError):
            await self._token_expired(exc)
        elif isinstance(exc, KiteIpNotAllowedError):
            await self._ip_not_allowed(exc, what)
        elif isinstance(exc, KiteRetryableError):
            await self._network_failed(f"{what}: {exc}", force=retried)
        else:
            await self._event("order_error", f"{what}: {exc}")
