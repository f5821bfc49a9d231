"""A local fake Kite for tests: REST + ticker websocket on 127.0.0.1, with faults on demand.

Answers come from Kite's recorded responses (``../shared/fixtures/kite-mocks``): profile,
margins, positions, holdings, quotes, instruments, the order book and its history, trades, the
session token. What a recording cannot cover is synthesised in the same shapes: candles for any
range (``fake_candles``), and orders placed during a test (a small in-memory order book that
pushes order updates over the websocket like Kite does).

Faults are rules matched per route name (see ``ROUTES``) and consumed in order::

    fake.inject("historical", status=429, times=2)       # two rate-limit answers
    fake.inject("historical", status=503, skip=3)        # the 4th request fails
    fake.inject("order.place", delay_s=2.0)              # slow: waits, then handles
    fake.inject("order.place", answer_delay_s=2.0)       # handles (order exists), answers late
    fake.inject("*", disconnect=True, times=1)           # connection cut without an answer
    fake.expire_token()                                  # every call → 403 TokenException
    fake.block_mis("SBIN")                               # order margins refuse MIS for SBIN
    fake.profile["products"].remove("MIS")               # the account has no intraday product
    fake.echo_credentials()                              # error bodies quote the credentials
    fake.reject_orders("RMS:Margin Exceeds")             # next order placed ends REJECTED
    await fake.ticker.drop_connections()                 # websocket network cut
    await fake.fill_order(order_id, 101.5, qty=3)        # the exchange fills (part of) an order
    fake.set_position("INFY", 5)                         # the account holds a position
    fake.order_rules.allow_ips({"203.0.113.7"})          # orders from 127.0.0.1 → 403
    fake.order_rules.rest_next(fill_qty=3)               # next market order: 3 fill, rest rests
    await fake.trigger_order(order_id)                   # an SL-M / SL order's trigger is hit

Kite's rules for API orders (static IP, 10 order requests/s, market protection on MARKET and
SL-M, protected market orders executed as limits) are in ``order_rules.py``; on by default
except the IP whitelist.

Use as ``async with FakeKite() as fake:``; point clients at ``fake.settings()`` and
``fake.credentials()``; ``fake.count("historical")`` tells how many requests a route received.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from aiohttp import web

from brokers.kite.auth import KiteCredentials
from brokers.kite.history import INTERVAL_MAX_DAYS
from brokers.kite.settings import KiteSettings
from config.sessions import IST
from tests.support.fake_kite.candles import SyntheticCandles
from tests.support.fake_kite.order_rules import OrderRequestRefused, OrderRules
from tests.support.fake_kite.ticker import FakeTicker
from tests.support.paths import KITE_MOCKS

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_FIXTURES = KITE_MOCKS
FAKE_API_KEY = "fake_api_key"
FAKE_API_SECRET = "fake_api_secret"
FAKE_ACCESS_TOKEN = "fake_access_token"
FAKE_REQUEST_TOKEN = "fake_request_token"
REJECTION = (
    "RMS:Margin Exceeds,Required:95417.84, Available:74251.80 for entity account-XXXXX "
    "across exchange across segment across product"
)

# route name → (method, path)
ROUTES: dict[str, tuple[str, str]] = {
    "session.token": ("POST", "/session/token"),
    "session.logout": ("DELETE", "/session/token"),
    "profile": ("GET", "/user/profile"),
    "margins": ("GET", "/user/margins"),
    "margins.segment": ("GET", "/user/margins/{segment}"),
    "margins.orders": ("POST", "/margins/orders"),
    "instruments": ("GET", "/instruments"),
    "instruments.exchange": ("GET", "/instruments/{exchange}"),
    "historical": ("GET", "/instruments/historical/{token}/{interval}"),
    "quote": ("GET", "/quote"),
    "quote.ltp": ("GET", "/quote/ltp"),
    "quote.ohlc": ("GET", "/quote/ohlc"),
    "orders": ("GET", "/orders"),
    "order.history": ("GET", "/orders/{order_id}"),
    "order.trades": ("GET", "/orders/{order_id}/trades"),
    "order.place": ("POST", "/orders/{variety}"),
    "order.modify": ("PUT", "/orders/{variety}/{order_id}"),
    "order.cancel": ("DELETE", "/orders/{variety}/{order_id}"),
    "trades": ("GET", "/trades"),
    "positions": ("GET", "/portfolio/positions"),
    "holdings": ("GET", "/portfolio/holdings"),
    "ticker": ("GET", "/ws"),
}
UNAUTHENTICATED = {"session.token"}


class RecordedRequest(NamedTuple):
    route: str
    method: str
    path: str
    query: dict[str, str]


@dataclass
class FaultRule:
    route: str  # a route name, or "*"
    status: int | None = None
    error_type: str = ""
    message: str = ""
    delay_s: float = 0.0  # before handling: the request has no effect until then
    answer_delay_s: float = 0.0  # after handling: the effect exists, the answer is late
    disconnect: bool = False
    times: int | None = 1  # None: forever
    skip: int = 0  # let this many matching requests through first

    def matches(self, route: str) -> bool:
        return self.times != 0 and self.route in ("*", route)


def _error(status: int, error_type: str, message: str) -> web.Response:
    body = {"status": "error", "message": message, "data": None, "error_type": error_type}
    return web.json_response(body, status=status)


def _success(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _now_text() -> str:
    return datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")


class _InputError(Exception):
    """Raised inside a handler to answer 400 InputException, as Kite does for bad parameters."""


def _parse_time(text: str | None, name: str) -> datetime:
    if not text:
        raise _InputError(f"missing `{name}`")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise _InputError(f"invalid `{name}`")


class _Rejection(NamedTuple):
    message: str
    at_placement: bool


class FakeKite:
    def __init__(
        self,
        fixtures_dir: Path | None = None,
        heartbeat_s: float = 1.0,
        candles: SyntheticCandles | None = None,
    ) -> None:
        self.fixtures_dir = (fixtures_dir or DEFAULT_FIXTURES).resolve()
        self.api_key = FAKE_API_KEY
        self.api_secret = FAKE_API_SECRET
        self.valid_tokens = {FAKE_ACCESS_TOKEN}
        self.request_tokens = {FAKE_REQUEST_TOKEN}
        self.requests: list[RecordedRequest] = []
        self.faults: list[FaultRule] = []
        self._rejections: list[_Rejection] = []
        self.echo_secrets = False
        self.order_rules = OrderRules()
        recorded = self.fixture("historical_minute.json")["data"]["candles"]
        self.candles = candles or SyntheticCandles(recorded)
        self.instruments_csv = {
            None: self.fixture_text("instruments_all.csv"),
            "NSE": self.fixture_text("instruments_nse.csv"),
        }
        self.quotes: dict[str, dict[str, Any]] = dict(self.fixture("quote.json")["data"])
        self.prices: dict[str, float] = {}
        self.positions: dict[str, list[dict[str, Any]]] = self.fixture("positions.json")["data"]
        self.orders: dict[str, list[dict[str, Any]]] = {}
        for order in self.fixture("orders.json")["data"]:
            self.orders[order["order_id"]] = [order]
        # order_info.json is a recorded history of an order absent from the recorded order
        # book: served by the history endpoint only, so orders() stays exactly orders.json.
        history = self.fixture("order_info.json")["data"]
        self.unlisted_histories = {history[0]["order_id"]: list(history)}
        self.extra_trades: list[dict[str, Any]] = []
        # the account, editable by a test (``fake.profile["products"].remove("MIS")``)
        self.profile: dict[str, Any] = self.fixture("profile.json")["data"]
        self.margins: dict[str, Any] = self.fixture("margins.json")["data"]
        self.mis_blocked: set[str] = set()
        self._order_ids = itertools.count(250101000000001)
        self._sessions = itertools.count(1)
        self.ticker = FakeTicker(self._ticker_authorised, heartbeat_s)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # --- fixtures --------------------------------------------------------------------------

    def fixture_text(self, name: str) -> str:
        return (self.fixtures_dir / name).read_text(encoding="utf-8")

    def fixture(self, name: str) -> Any:
        return json.loads(self.fixture_text(name))

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeKite:
        app = web.Application(middlewares=[self._middleware])
        handlers = self._handlers()
        for name, (method, path) in ROUTES.items():
            app.router.add_route(method, path, handlers[name], name=name)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        await self.ticker.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKite:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeKite]:
        """Serve from a background thread's event loop, for blocking clients (the official
        ``KiteConnect``, CLI commands that call ``asyncio.run``). Drive the ticker from the test
        thread with ``fake.call(fake.ticker.push(...))``."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="fake-kite", daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Kite did not start within 10s")
        self._loop = loop
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = None

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the serving thread's loop (only under ``in_thread``)."""
        if self._loop is None:
            raise RuntimeError("FakeKite.call needs the fake running under in_thread()")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def settings(self, **overrides: Any) -> KiteSettings:
        """Settings pointed at this fake, with fast retries unless overridden."""
        values: dict[str, Any] = {
            "api_root": self.api_root,
            "ws_url": self.ws_url,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.05,
            "historical_requests_per_s": 1000,
        }
        values.update(overrides)
        return KiteSettings(**values)

    def credentials(self, access_token: str | None = FAKE_ACCESS_TOKEN) -> KiteCredentials:
        return KiteCredentials(self.api_key, self.api_secret, access_token)

    # --- test controls ---------------------------------------------------------------------

    def inject(
        self,
        route: str,
        status: int | None = None,
        *,
        error_type: str = "",
        message: str = "",
        delay_s: float = 0.0,
        answer_delay_s: float = 0.0,
        disconnect: bool = False,
        times: int | None = 1,
        skip: int = 0,
    ) -> FaultRule:
        """``delay_s`` holds the request before it is handled; ``answer_delay_s`` handles it
        (an order is placed) and holds the answer, the ambiguous case a client timeout meets."""
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
        rule = FaultRule(
            route, status, error_type, message, delay_s, answer_delay_s, disconnect, times, skip
        )
        self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_token(self) -> None:
        """Every access token stops working, as at Kite's daily expiry."""
        self.valid_tokens.clear()

    def echo_credentials(self) -> None:
        """From now on every error answer quotes the credentials the request carried — the
        ``Authorization`` header's ``api_key:access_token``, a login's request token and
        checksum — bare, as a careless server or proxy error page might. A client must not
        print, log or store any of it."""
        self.echo_secrets = True

    def reject_orders(
        self, message: str = REJECTION, times: int = 1, at_placement: bool = False
    ) -> None:
        """The next ``times`` placements are rejected: by RMS after acceptance (status REJECTED,
        as Kite does for margin shortfalls), or ``at_placement`` with a 400 InputException."""
        self._rejections.extend([_Rejection(message, at_placement)] * times)

    def count(self, route: str) -> int:
        return sum(1 for r in self.requests if r.route == route)

    # --- plumbing --------------------------------------------------------------------------

    def _ticker_authorised(self, api_key: str, token: str) -> bool:
        return api_key == self.api_key and token in self.valid_tokens

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        api_key, _, token = value.partition(":")
        return scheme == "token" and api_key == self.api_key and token in self.valid_tokens

    async def _error_for(
        self, request: web.Request, status: int, error_type: str, message: str
    ) -> web.Response:
        """An error answer; with ``echo_credentials`` its message quotes what was sent."""
        if self.echo_secrets:
            _, _, credentials = request.headers.get("Authorization", "").partition(" ")
            form = await request.post() if request.method == "POST" else {}
            sent = [credentials, str(form.get("request_token", "")), str(form.get("checksum", ""))]
            message = f"{message} (received: {' '.join(v for v in sent if v)})"
        return _error(status, error_type, message)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name or "?"
        self.requests.append(
            RecordedRequest(route, request.method, request.path, dict(request.query))
        )
        answer_delay_s = 0.0
        for rule in self.faults:
            if not rule.matches(route):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            if rule.times is not None:
                rule.times -= 1
            if rule.disconnect:
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if rule.delay_s:
                await asyncio.sleep(rule.delay_s)
            if rule.status is not None:
                error_type = rule.error_type or _default_error_type(rule.status)
                message = rule.message or f"injected {rule.status}"
                if route == "ticker":
                    return web.Response(status=rule.status, text=message)
                return await self._error_for(request, rule.status, error_type, message)
            answer_delay_s = rule.answer_delay_s
            break
        if route != "ticker" and route not in UNAUTHENTICATED and not self._authorised(request):
            return await self._error_for(
                request, 403, "TokenException", "Incorrect `api_key` or `access_token`."
            )
        try:
            response = await handler(request)
        except _InputError as exc:
            response = _error(400, "InputException", str(exc))
        if answer_delay_s:
            await asyncio.sleep(answer_delay_s)
        return response

    def _handlers(self) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
        return {
            "session.token": self._session_token,
            "session.logout": self._static("session_logout.json"),
            "profile": self._profile,
            "margins": self._margins,
            "margins.orders": self._order_margins,
            "margins.segment": self._margins_segment,
            "instruments": self._instruments,
            "instruments.exchange": self._instruments,
            "historical": self._historical,
            "quote": self._quote("quote"),
            "quote.ltp": self._quote("ltp"),
            "quote.ohlc": self._quote("ohlc"),
            "orders": self._orders,
            "order.history": self._order_history,
            "order.trades": self._order_trades,
            "order.place": self._place,
            "order.modify": self._modify,
            "order.cancel": self._cancel,
            "trades": self._trades,
            "positions": self._positions,
            "holdings": self._static("holdings.json"),
            "ticker": self.ticker.handle,
        }

    def _static(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.json_response(self.fixture(name))

        return handler

    # --- REST handlers ---------------------------------------------------------------------

    async def _positions(self, request: web.Request) -> web.StreamResponse:
        return _success(self.positions)

    def set_position(
        self,
        symbol: str,
        quantity: int,
        *,
        product: str = "MIS",
        exchange: str = "NSE",
        average_price: float = 100.0,
    ) -> None:
        """Put a position in the account (net and day books), replacing one with the same key,
        in the recorded rows' shape."""
        template = next(
            r for r in self.fixture("positions.json")["data"]["net"] if r["exchange"] == "NSE"
        )
        row = dict(
            template,
            tradingsymbol=symbol,
            exchange=exchange,
            product=product,
            quantity=quantity,
            overnight_quantity=0,
            average_price=average_price,
            last_price=average_price,
            value=-quantity * average_price,
            pnl=0,
            m2m=0,
            unrealised=0,
            realised=0,
        )
        for book in ("net", "day"):
            rows = [
                r
                for r in self.positions[book]
                if (r["tradingsymbol"], r["exchange"], r["product"]) != (symbol, exchange, product)
            ]
            self.positions[book] = [*rows, dict(row)]

    async def _session_token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        api_key = str(form.get("api_key", ""))
        request_token = str(form.get("request_token", ""))
        checksum = str(form.get("checksum", ""))
        expected = hashlib.sha256(f"{api_key}{request_token}{self.api_secret}".encode()).hexdigest()
        if api_key != self.api_key or request_token not in self.request_tokens:
            return await self._error_for(
                request, 403, "TokenException", "Token is invalid or has expired."
            )
        if checksum != expected:
            return await self._error_for(request, 403, "TokenException", "Invalid `checksum`.")
        self.request_tokens.discard(request_token)  # a request token is single-use
        token = f"{FAKE_ACCESS_TOKEN}_{next(self._sessions)}"
        self.valid_tokens.add(token)
        data = self.fixture("generate_session.json")["data"]
        data.update(api_key=self.api_key, access_token=token)
        return _success(data)

    async def _profile(self, request: web.Request) -> web.StreamResponse:
        return _success(self.profile)

    async def _margins(self, request: web.Request) -> web.StreamResponse:
        return _success(self.margins)

    def block_mis(self, *symbols: str) -> None:
        """Kite's margin calculator refuses MIS orders for these symbols (as for a stock taken
        off the intraday list)."""
        self.mis_blocked.update(symbols)

    async def _order_margins(self, request: web.Request) -> web.StreamResponse:
        """``POST /margins/orders``: the recorded answer's shape, one entry per order; a MIS
        order for a blocked symbol refuses the whole request, as Kite does."""
        try:
            orders = await request.json()
        except ValueError:
            return _error(400, "InputException", "invalid JSON body")
        if not isinstance(orders, list) or not orders:
            return _error(400, "InputException", "expected a list of orders")
        template = self.fixture("order_margins.json")["data"][0]
        answer = []
        for order in orders:
            symbol = str(order.get("tradingsymbol", ""))
            if order.get("product") == "MIS" and symbol in self.mis_blocked:
                return _error(
                    400, "InputException", f"MIS orders are blocked for {symbol} (intraday)"
                )
            answer.append(dict(template, tradingsymbol=symbol, exchange=order.get("exchange")))
        return _success(answer)

    async def _margins_segment(self, request: web.Request) -> web.StreamResponse:
        segment = request.match_info["segment"]
        data = self.margins
        if segment not in data:
            return _error(400, "InputException", f"invalid segment `{segment}`")
        return _success(data[segment])

    async def _instruments(self, request: web.Request) -> web.StreamResponse:
        exchange = request.match_info.get("exchange")
        if exchange in self.instruments_csv:
            text = self.instruments_csv[exchange]
        else:
            lines = self.instruments_csv[None].splitlines()
            text = "\n".join([lines[0]] + [ln for ln in lines[1:] if ln.endswith(f",{exchange}")])
        return web.Response(text=text, content_type="text/csv")

    def add_instrument(self, token: int, symbol: str, exchange: str = "NSE") -> None:
        """Make a symbol known to the instruments endpoints (fixture rows lack e.g. INFY)."""
        row = f"{token},{token >> 8},{symbol},{symbol},0.0,,0.0,0.05,1,EQ,{exchange},{exchange}"
        for key in (None, exchange):
            if key in self.instruments_csv:
                self.instruments_csv[key] = (
                    self.instruments_csv[key].rstrip("\n") + "\n" + row + "\n"
                )

    async def _historical(self, request: web.Request) -> web.StreamResponse:
        interval = request.match_info["interval"]
        try:
            token = int(request.match_info["token"])
        except ValueError:
            return _error(400, "InputException", "invalid token")
        if interval not in INTERVAL_MAX_DAYS:
            return _error(400, "InputException", "invalid interval")
        start = _parse_time(request.query.get("from"), "from")
        end = _parse_time(request.query.get("to"), "to")
        if end < start:
            return _error(400, "InputException", "invalid `from` and `to` dates")
        limit = INTERVAL_MAX_DAYS[interval]
        if end - start > timedelta(days=limit):
            return _error(400, "InputException", f"interval exceeds max limit: {limit} days")
        rows = self.candles.candles(token, interval, start, end)
        return _success({"candles": rows})

    def _quote(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            wanted = request.query.getall("i", [])
            data = {}
            for key in wanted:
                quote = self.quotes.get(key)
                if quote is None:
                    continue
                if kind == "ltp":
                    quote = {k: quote[k] for k in ("instrument_token", "last_price")}
                elif kind == "ohlc":
                    quote = {k: quote[k] for k in ("instrument_token", "last_price", "ohlc")}
                data[key] = quote
            return _success(data)

        return handler

    # --- orders ----------------------------------------------------------------------------

    async def _orders(self, request: web.Request) -> web.StreamResponse:
        return _success([history[-1] for history in self.orders.values()])

    async def _order_history(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["order_id"]
        history = self.orders.get(order_id) or self.unlisted_histories.get(order_id)
        if history is None:
            return _error(400, "InputException", "Couldn't find that `order_id`.")
        return _success(history)

    async def _order_trades(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["order_id"]
        fixture = self.fixture("order_trades.json")["data"]
        trades = [t for t in fixture + self.extra_trades if t["order_id"] == order_id]
        return _success(trades)

    async def _trades(self, request: web.Request) -> web.StreamResponse:
        return _success(self.fixture("trades.json")["data"] + self.extra_trades)

    async def _place(self, request: web.Request) -> web.StreamResponse:
        refused = self._admit_order_request(request)
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.post()).items()}
        missing = [
            f
            for f in (
                "tradingsymbol",
                "exchange",
                "transaction_type",
                "order_type",
                "quantity",
                "product",
            )
            if not form.get(f)
        ]
        if missing:
            return _error(400, "InputException", f"missing or empty field(s): {', '.join(missing)}")
        if form["order_type"] not in ("MARKET", "LIMIT", "SL", "SL-M"):
            return _error(400, "InputException", "invalid `order_type`")
        if len(form.get("tag", "")) > 20:
            return _error(400, "InputException", "`tag` is too long (max 20 characters)")
        try:
            quantity = int(form["quantity"])
            price = float(form.get("price") or 0)
            trigger = float(form.get("trigger_price") or 0)
        except ValueError:
            return _error(400, "InputException", "invalid `quantity`, `price` or `trigger_price`")
        try:
            protection = self.order_rules.market_protection(form, form["order_type"])
        except OrderRequestRefused as exc:
            return _error(exc.status, exc.error_type, exc.message)
        rejection = self._rejections.pop(0) if self._rejections else None
        if rejection is not None and rejection.at_placement:
            return _error(400, "InputException", rejection.message)
        order_id = str(next(self._order_ids))
        symbol = form["tradingsymbol"]
        now = _now_text()
        order: dict[str, Any] = {
            "placed_by": "AB1234",
            "order_id": order_id,
            "exchange_order_id": None,
            "parent_order_id": None,
            "status": "OPEN",
            "status_message": None,
            "status_message_raw": None,
            "order_timestamp": now,
            "exchange_update_timestamp": now,
            "exchange_timestamp": None,
            "variety": request.match_info["variety"],
            "modified": False,
            "exchange": form["exchange"],
            "tradingsymbol": symbol,
            "instrument_token": 0,
            "order_type": form["order_type"],
            "transaction_type": form["transaction_type"],
            "validity": form.get("validity", "DAY"),
            "product": form["product"],
            "quantity": quantity,
            "disclosed_quantity": 0,
            "price": price,
            "trigger_price": trigger,
            "average_price": 0,
            "filled_quantity": 0,
            "pending_quantity": quantity,
            "cancelled_quantity": 0,
            "market_protection": protection,
            "meta": {},
            "tag": form.get("tag") or None,
            "guid": f"fake-{order_id}",
        }
        self.orders[order_id] = [dict(order, status="PUT ORDER REQ RECEIVED")]
        if rejection is not None:
            order.update(
                status="REJECTED",
                status_message=rejection.message,
                status_message_raw=rejection.message,
                pending_quantity=0,
            )
        elif form["order_type"] == "MARKET":
            self._execute_protected(order)
        elif form["order_type"] in ("SL", "SL-M"):
            order["status"] = "TRIGGER PENDING"
        await self._record(order)
        return _success({"order_id": order_id})

    def _fill(self, order: dict[str, Any], price: float, qty: int) -> None:
        """Execute ``qty`` more of ``order`` at ``price``: one trade; COMPLETE when all is filled,
        else still OPEN with the running average price, as Kite reports partial fills."""
        done = int(order["filled_quantity"])
        filled = done + qty
        trades = sum(1 for t in self.extra_trades if t["order_id"] == order["order_id"])
        order.update(
            status="COMPLETE" if filled >= order["quantity"] else "OPEN",
            average_price=(float(order["average_price"]) * done + price * qty) / filled,
            filled_quantity=filled,
            pending_quantity=order["quantity"] - filled,
            exchange_order_id=f"1{order['order_id']}",
            exchange_timestamp=_now_text(),
        )
        self.extra_trades.append(
            {
                "trade_id": f"T{order['order_id']}" + (f"-{trades + 1}" if trades else ""),
                "order_id": order["order_id"],
                "exchange": order["exchange"],
                "tradingsymbol": order["tradingsymbol"],
                "instrument_token": order["instrument_token"],
                "product": order["product"],
                "average_price": price,
                "quantity": qty,
                "exchange_order_id": order["exchange_order_id"],
                "transaction_type": order["transaction_type"],
                "fill_timestamp": order["exchange_timestamp"],
                "order_timestamp": order["order_timestamp"][11:],
                "exchange_timestamp": order["exchange_timestamp"],
            }
        )

    async def _record(self, order: dict[str, Any]) -> None:
        self.orders.setdefault(order["order_id"], []).append(copy.deepcopy(order))
        update = dict(order, user_id="AB1234", app_id=1234, checksum="")
        update["unfilled_quantity"] = order["pending_quantity"]
        await self.ticker.send_order_update(update)

    def _open_order(self, request: web.Request) -> dict[str, Any] | web.Response:
        history = self.orders.get(request.match_info["order_id"])
        if history is None:
            return _error(400, "InputException", "Couldn't find that `order_id`.")
        order = copy.deepcopy(history[-1])
        if order["status"] not in ("OPEN", "TRIGGER PENDING"):
            return _error(
                400, "InputException", f"Order cannot be modified: it is {order['status']}."
            )
        return order

    async def _modify(self, request: web.Request) -> web.StreamResponse:
        refused = self._admit_order_request(request)
        if refused is not None:
            return refused
        order = self._open_order(request)
        if isinstance(order, web.Response):
            return order
        form = await request.post()
        if form.get("order_type") or form.get("market_protection"):
            order_type = str(form.get("order_type") or order["order_type"])
            given = str(form.get("market_protection") or order["market_protection"])
            try:
                order["market_protection"] = self.order_rules.market_protection(
                    {"market_protection": given}, order_type
                )
            except OrderRequestRefused as exc:
                return _error(exc.status, exc.error_type, exc.message)
        for key, cast in (("quantity", int), ("price", float), ("trigger_price", float)):
            if form.get(key):
                try:
                    order[key] = cast(str(form[key]))
                except ValueError:
                    raise _InputError(f"invalid `{key}`") from None
        if form.get("order_type"):
            order["order_type"] = str(form["order_type"])
        order["pending_quantity"] = order["quantity"] - order["filled_quantity"]
        order["modified"] = True
        await self._record(order)
        return _success({"order_id": order["order_id"]})

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        refused = self._admit_order_request(request)
        if refused is not None:
            return refused
        order = self._open_order(request)
        if isinstance(order, web.Response):
            return order
        order.update(
            status="CANCELLED", cancelled_quantity=order["pending_quantity"], pending_quantity=0
        )
        await self._record(order)
        return _success({"order_id": order["order_id"]})

    async def fill_order(self, order_id: str, price: float, qty: int | None = None) -> None:
        """Fill ``qty`` (default: all that is pending) of an open order at ``price``, a test
        standing in for the exchange; pushes the order update like any other change."""
        order = copy.deepcopy(self.orders[order_id][-1])
        if order["status"] not in ("OPEN", "TRIGGER PENDING"):
            raise ValueError(f"order {order_id} is {order['status']}; only open orders fill")
        pending = int(order["pending_quantity"])
        qty = pending if qty is None else qty
        if not 0 < qty <= pending:
            raise ValueError(f"order {order_id}: cannot fill {qty} of {pending} pending")
        self._fill(order, price, qty)
        await self._record(order)

    # --- Kite's rules for API orders (order_rules.py): static IP, rate, market protection ---

    def _admit_order_request(self, request: web.Request) -> web.Response | None:
        """The answer to an order request Kite refuses outright (IP, rate), else None."""
        _, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            self.order_rules.admit(request.remote, value.partition(":")[0])
        except OrderRequestRefused as exc:
            return _error(exc.status, exc.error_type, exc.message)
        return None

    def _execute_protected(self, order: dict[str, Any]) -> None:
        """A protected market order (a MARKET order, or an SL-M one whose trigger was hit) as
        Kite executes it: a limit at the protection band's edge, so all of it fills at the last
        price — or, on demand (``order_rules.rest_next``), part of it, the rest resting at that
        limit as an OPEN LIMIT order."""
        last = self.prices.get(order["tradingsymbol"], 100.0)
        pending = int(order["quantity"]) - int(order["filled_quantity"])
        qty = self.order_rules.fill_now(pending)
        if qty > 0:
            self._fill(order, last, qty)
        if qty < pending:
            buy = order["transaction_type"] == "BUY"
            limit = self.order_rules.protection_limit(buy, last, float(order["market_protection"]))
            order.update(status="OPEN", order_type="LIMIT", price=limit)

    async def trigger_order(self, order_id: str) -> None:
        """An SL-M or SL order's trigger price is hit: SL-M executes as a protected market
        order, SL becomes an open limit order."""
        order = copy.deepcopy(self.orders[order_id][-1])
        if order["status"] != "TRIGGER PENDING":
            raise ValueError(f"order {order_id} is {order['status']}, not TRIGGER PENDING")
        order["status"] = "OPEN"
        if order["order_type"] == "SL-M":
            self._execute_protected(order)
        await self._record(order)


def _default_error_type(status: int) -> str:
    if status == 429 or status >= 500:
        return "NetworkException"
    if status == 403:
        return "TokenException"
    return "InputException"
