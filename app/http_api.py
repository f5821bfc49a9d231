"""The paper/live daemon's HTTP API: dashboard, JSON state, Prometheus metrics, operator controls.

    GET  /                        the dashboard (one self-contained page; polls /api/state)
    GET  /api/state               the run as stored (see ``app.web.snapshot``) + live numbers
    GET  /metrics                 Prometheus text exposition
    POST /api/kill                kill switch: HALTED + flatten everything   (token required)
    POST /api/resume              back to ACTIVE                             (token required)
    POST /api/flatten/{symbol}    close one symbol's position                (token required)

It binds to 127.0.0.1 unless told otherwise: GET endpoints need no token, so anyone who can
reach the port can read the account. Every request must name this server in its ``Host``
header (``app.web.hosts``: 127.0.0.1, localhost, [::1], the bound address, or
``TRADER_HTTP_ALLOWED_HOSTS``), else 421 — a web page that rebinds its own DNS name to
127.0.0.1 cannot read the account through the browser. Every non-GET request needs
``Authorization: Bearer <token>`` (``app.web.auth``). Both checks sit in middlewares, so a
route added later cannot forget them.

The daemon serves HTTP from a thread and event loop of its own (``app.web.threads``), and reads
from readings built off the session's loop (``app.web.read_cache``), so however many GETs
arrive, they do not queue on the loop that processes bars. What touches the session — the
controls, the capture of live numbers — is sent to the session's loop, where it runs between
bars.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import hdrs, web
from sqlalchemy import Engine

from app.web.auth import ControlToken, resolve_token
from app.web.hosts import ALLOWED_HOSTS_ENV, HostAllowList, allowed_hosts_from_env
from app.web.prometheus import Histogram, ObservedWindow
from app.web.read_cache import CommitCounter, Produce, ReadCache, ReadPolicy
from app.web.session_view import (
    LiveNumbers,
    capture_live_numbers,
    live_status,
    render_metrics,
    stored_counts,
)
from app.web.snapshot import CurveCache, RunNotFoundError, read_snapshot
from app.web.threads import ApiServer, SessionLoop
from config.redact import scrub
from engine.log import recent_log_lines
from engine.session import TradingSession

log = structlog.get_logger()
T = TypeVar("T")

SESSION = web.AppKey("session", TradingSession)
ON_SESSION = web.AppKey("on_session", SessionLoop)
TOKEN = web.AppKey("token", ControlToken)
HOSTS = web.AppKey("hosts", HostAllowList)
REFUSED_HOSTS = web.AppKey("refused_hosts", set[str])
LATENCY = web.AppKey("latency", Histogram)
COMMITS = web.AppKey("commits", CommitCounter)
STATE = web.AppKey("state", ReadCache)
METRICS = web.AppKey("metrics", ReadCache)

#: who operator actions are attributed to in risk events (the gate column: keep it short)
WHO = "http-api"
LOG_LINES = 100
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the page may talk to this server only: no CDN, no other origin, no framing
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class HttpApiError(ValueError):
    """The HTTP API cannot start (e.g. the port is taken)."""


@cache
def dashboard_html() -> str:
    return files("app.web").joinpath("dashboard.html").read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """NaN/inf → None: browsers' JSON.parse rejects the NaN that json.dumps writes by default."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.json_response(_finite(data), status=status, **kwargs)


def _encoded(data: Any) -> bytes:
    return json.dumps(_finite(data)).encode()


def _local_address(request: web.Request) -> tuple[str, int] | None:
    """(ip, port) the request arrived on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None


#: a flood of requests for other hosts logs each distinct Host once, up to this many
MAX_REFUSED_HOSTS_LOGGED = 64


@web.middleware
async def check_host(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer only requests addressed to this server (DNS rebinding: see ``app.web.hosts``)."""
    host = request.headers.get(hdrs.HOST)
    if request.app[HOSTS].allows(host, _local_address(request)):
        return await handler(request)
    refused = request.app[REFUSED_HOSTS]
    if len(refused) < MAX_REFUSED_HOSTS_LOGGED and (host or "") not in refused:
        refused.add(host or "")
        log.warning("http.wrong_host", host=host, path=request.path, remote=request.remote)
    return _json(
        {
            "error": "this server answers only requests addressed to it (Host 127.0.0.1, "
            f"localhost or its bound address); add a name with {ALLOWED_HOSTS_ENV}"
        },
        status=421,
    )


@web.middleware
async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request that may change something needs the bearer token; reads do not."""
    if request.method not in SAFE_METHODS and not request.app[TOKEN].accepts(
        request.headers.get("Authorization")
    ):
        log.warning("http.unauthorized", method=request.method, path=request.path)
        return _json(
            {"error": "missing or wrong control token (Authorization: Bearer <token>)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="trader"'},
        )
    return await handler(request)


# ---- reads ---------------------------------------------------------------------------------------
async def page(_request: web.Request) -> web.Response:
    return web.Response(text=dashboard_html(), content_type="text/html", headers=PAGE_HEADERS)


async def state(request: web.Request) -> web.Response:
    reading = await request.app[STATE].get()
    headers = {"Cache-Control": "no-store"}
    if reading.status == 503:
        headers["Retry-After"] = "1"
    return web.Response(
        body=reading.body, status=reading.status, content_type="application/json", headers=headers
    )


async def metrics(request: web.Request) -> web.Response:
    reading = await request.app[METRICS].get()
    return web.Response(body=reading.body, headers={"Content-Type": METRICS_CONTENT_TYPE})


def _state_reading(
    engine: Engine, run_id: str, curve: CurveCache, live: tuple[dict[str, Any], list[str]]
) -> tuple[int, bytes]:
    """``/api/state``'s answer: the stored run (database reads: a worker thread's job) with the
    live numbers and log lines captured on the session's loop."""
    try:
        snapshot = read_snapshot(engine, run_id, curve)
    except RunNotFoundError as exc:
        return 503, _encoded({"error": str(exc)})
    snapshot["live"], snapshot["logs"] = live
    return 200, _encoded(snapshot)


def _producer(
    on_session: SessionLoop,
    version: Callable[[], int],
    capture: Callable[[], T],
    build: Callable[[T], tuple[int, bytes]],
    threaded: bool,
) -> Produce:
    """A reading: ``capture`` on the session's loop (with the version it matches), ``build``
    from it in a worker thread — or, when the database is only reachable from the session's
    thread (``threaded`` False), there too."""

    async def captured() -> tuple[int, T]:
        return version(), capture()

    async def produce() -> tuple[int, int, bytes]:
        at, live = await on_session.call(captured)
        if threaded:
            status, body = await asyncio.to_thread(build, live)
        else:

            async def in_place() -> tuple[int, bytes]:
                return build(live)

            status, body = await on_session.call(in_place)
        return at, status, body

    return produce


def _read_caches(app: web.Application, session: TradingSession, policy: ReadPolicy | None) -> None:
    """The readings behind ``/api/state`` and ``/metrics``, rebuilt after each commit."""
    engine, run_id = session.stored.engine, session.status.run_id
    # an in-memory SQLite database lives on one connection of one thread: another thread
    # would open another, empty database
    threaded = not (
        engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    )
    commits = app[COMMITS] = CommitCounter(engine)
    curve = CurveCache(run_id)
    latency = app[LATENCY]
    on_session = app[ON_SESSION]

    def version() -> int:
        return commits.count

    def state_live() -> tuple[dict[str, Any], list[str]]:
        return live_status(session), recent_log_lines(LOG_LINES)

    def state_body(live: tuple[dict[str, Any], list[str]]) -> tuple[int, bytes]:
        return _state_reading(engine, run_id, curve, live)

    def metrics_live() -> LiveNumbers:
        return capture_live_numbers(session, latency)

    def metrics_body(live: LiveNumbers) -> tuple[int, bytes]:
        return 200, render_metrics(live, stored_counts(engine, run_id)).encode()

    app[STATE] = ReadCache(
        "state", version, _producer(on_session, version, state_live, state_body, threaded), policy
    )
    app[METRICS] = ReadCache(
        "metrics",
        version,
        _producer(on_session, version, metrics_live, metrics_body, threaded),
        policy,
    )

    async def close(app: web.Application) -> None:
        await app[STATE].close()
        await app[METRICS].close()
        app[COMMITS].close()

    app.on_cleanup.append(close)


# ---- controls ------------------------------------------------------------------------------------
def _trading_state(session: TradingSession) -> dict[str, Any]:
    machine = session.pipe.state
    return {
        "state": str(machine.state),
        "reason": machine.reason,
        "holdings": session.pipe.portfolio.holdings(),
        "open_orders": len(session.pipe.broker.open_orders()),
    }


def _not_running(session: TradingSession) -> web.Response | None:
    if session.status.finished or session.stop.is_set():
        return _json({"error": "the session is not running"}, status=409)
    return None


async def _control(
    request: web.Request, event: str, action: Callable[[TradingSession], Awaitable[None]]
) -> web.Response:
    """Refuse if the session is not running; else log, act, and answer the trading state —
    all on the session's loop, between bars."""
    session, remote = request.app[SESSION], request.remote

    async def act() -> web.Response:
        refused = _not_running(session)
        if refused is not None:
            return refused
        log.warning(event, remote=remote)
        await action(session)
        return _json(_trading_state(session))

    return await request.app[ON_SESSION].call(act)


async def kill(request: web.Request) -> web.Response:
    return await _control(request, "http.kill_switch", lambda s: s.kill_switch(WHO))


async def resume(request: web.Request) -> web.Response:
    return await _control(request, "http.resume", lambda s: s.resume_trading(WHO))


async def flatten(request: web.Request) -> web.Response:
    session, remote = request.app[SESSION], request.remote
    symbol = request.match_info["symbol"]

    async def act() -> web.Response:
        refused = _not_running(session)
        if refused is not None:
            return refused
        if symbol not in session.pipe.universe:
            return _json({"error": f"unknown symbol {symbol!r}"}, status=404)
        log.warning("http.flatten", symbol=symbol, remote=remote)
        if not await session.flatten(symbol, WHO):
            return _json({"error": f"no position in {symbol}"}, status=404)
        return _json(_trading_state(session))

    return await request.app[ON_SESSION].call(act)


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A control that fails answers with the reason instead of a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.error("http.error", method=request.method, path=request.path, error=str(exc))
        return _json({"error": scrub(f"{type(exc).__name__}: {exc}")}, status=500)


def build_app(
    session: TradingSession,
    token: ControlToken,
    *,
    bind_host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] | None = None,
    read_policy: ReadPolicy | None = None,
    session_loop: asyncio.AbstractEventLoop | None = None,
) -> web.Application:
    """The application for one session (tests serve it with aiohttp's test server, on the
    session's loop; the daemon from its own thread, ``start_http_api``).

    ``allowed_hosts``: extra ``Host`` names to answer (default: ``TRADER_HTTP_ALLOWED_HOSTS``);
    ``read_policy``: how fresh readings are (default: ``app.web.read_cache``'s);
    ``session_loop``: the loop the session runs on (default: the running one)."""
    app = web.Application(middlewares=[check_host, require_token, control_errors])
    app[SESSION] = session
    app[ON_SESSION] = SessionLoop(session_loop or asyncio.get_running_loop())
    app[TOKEN] = token
    extra = allowed_hosts_from_env() if allowed_hosts is None else list(allowed_hosts)
    app[HOSTS] = HostAllowList.build(bind_host, extra)
    app[REFUSED_HOSTS] = set()
    latency = Histogram()
    app[LATENCY] = latency
    window = session.status.decision_latency_s
    for value in window:
        latency.observe(value)
    session.status.decision_latency_s = ObservedWindow(window, latency.observe)
    _read_caches(app, session, read_policy)
    app.router.add_get("/", page)
    app.router.add_get("/api/state", state)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/kill", kill)
    app.router.add_post("/api/resume", resume)
    app.router.add_post("/api/flatten/{symbol}", flatten)
    return app


async def start_http_api(
    session: TradingSession, host: str = "127.0.0.1", port: int = 0, *,
    token_file: Path | None = None,
) -> ApiServer:  # fmt: skip
    """Serve the API for ``session`` on ``host:port`` (0: any free port) from a thread of its
    own (``app.web.threads``), so requests never queue on the session's loop; the caller owns
    the returned server and awaits ``cleanup()`` on it. Prints where the control token is."""
    token = resolve_token(port, token_file)
    app = build_app(session, token, bind_host=host, session_loop=asyncio.get_running_loop())
    server = ApiServer(app, host, port)
    try:
        await server.start()
    except OSError as exc:
        raise HttpApiError(f"HTTP API cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = server.addresses[0][1] if server.addresses else port
    url = f"http://{host}:{bound}/"
    where = str(token.path) if token.path else "$TRADER_TOKEN"
    print(f"dashboard: {url}  control token: {where}", flush=True)
    log.info(
        "http.listening", url=url, control_credential=where,
        allowed_hosts=sorted(app[HOSTS].names) + [f"{n}:{p}" for n, p in app[HOSTS].pinned],
    )  # fmt: skip
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("http.exposed", host=host, note="GET endpoints need no token")
    return server
