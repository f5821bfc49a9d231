"""The paper/live daemon's HTTP API: dashboard, JSON state, Prometheus metrics, operator controls.

    GET  /                        the dashboard (one self-contained page; polls /api/state)
    GET  /api/state               the run as stored (see ``app.web.snapshot``) + live numbers
    GET  /metrics                 Prometheus text exposition
    POST /api/kill                kill switch: HALTED + flatten everything   (token required)
    POST /api/resume              back to ACTIVE                             (token required)
    POST /api/flatten/{symbol}    close one symbol's position                (token required)

It binds to 127.0.0.1 unless told otherwise: GET endpoints need no token, so anyone who can
reach the port can read the account. Every non-GET request needs ``Authorization: Bearer
<token>`` (``app.web.auth``); the check sits in a middleware, so a POST route added later
cannot forget it. Handlers run on the session's event loop, so controls act between bars.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from app.web.auth import ControlToken, resolve_token
from app.web.prometheus import Histogram, ObservedWindow
from app.web.session_view import live_status, render_metrics
from app.web.snapshot import CurveCache, RunNotFoundError, read_snapshot
from engine.log import recent_log_lines
from engine.session import TradingSession

log = structlog.get_logger()

SESSION = web.AppKey("session", TradingSession)
TOKEN = web.AppKey("token", ControlToken)
CURVE = web.AppKey("curve", CurveCache)
LATENCY = web.AppKey("latency", Histogram)

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
    session = request.app[SESSION]
    try:
        snapshot = read_snapshot(session.stored.engine, session.status.run_id, request.app[CURVE])
    except RunNotFoundError as exc:
        return _json({"error": str(exc)}, status=503, headers={"Retry-After": "1"})
    snapshot["live"] = live_status(session)
    snapshot["logs"] = recent_log_lines(LOG_LINES)
    return _json(snapshot, headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    text = render_metrics(request.app[SESSION], request.app[LATENCY])
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


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
    """Refuse if the session is not running; else log, act, and answer the trading state."""
    session = request.app[SESSION]
    refused = _not_running(session)
    if refused is not None:
        return refused
    log.warning(event, remote=request.remote)
    await action(session)
    return _json(_trading_state(session))


async def kill(request: web.Request) -> web.Response:
    return await _control(request, "http.kill_switch", lambda s: s.kill_switch(WHO))


async def resume(request: web.Request) -> web.Response:
    return await _control(request, "http.resume", lambda s: s.resume_trading(WHO))


async def flatten(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    symbol = request.match_info["symbol"]
    refused = _not_running(session)
    if refused is not None:
        return refused
    if symbol not in session.pipe.universe:
        return _json({"error": f"unknown symbol {symbol!r}"}, status=404)
    log.warning("http.flatten", symbol=symbol, remote=request.remote)
    if not await session.flatten(symbol, WHO):
        return _json({"error": f"no position in {symbol}"}, status=404)
    return _json(_trading_state(session))


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A control that fails answers with the reason instead of a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.error("http.error", method=request.method, path=request.path, error=str(exc))
        return _json({"error": f"{type(exc).__name__}: {exc}"}, status=500)


def build_app(session: TradingSession, token: ControlToken) -> web.Application:
    """The application for one session (tests serve it with aiohttp's test server)."""
    app = web.Application(middlewares=[require_token, control_errors])
    app[SESSION] = session
    app[TOKEN] = token
    app[CURVE] = CurveCache(session.status.run_id)
    latency = Histogram()
    app[LATENCY] = latency
    window = session.status.decision_latency_s
    for value in window:
        latency.observe(value)
    session.status.decision_latency_s = ObservedWindow(window, latency.observe)
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
) -> web.AppRunner:  # fmt: skip
    """Serve the API for ``session`` on ``host:port`` (0: any free port); the caller owns the
    returned runner and calls ``cleanup()`` on it. Prints where the control token is."""
    token = resolve_token(port, token_file)
    runner = web.AppRunner(build_app(session, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise HttpApiError(f"HTTP API cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}/"
    where = str(token.path) if token.path else "$TRADER_TOKEN"
    print(f"dashboard: {url}  control token: {where}", flush=True)
    log.info("http.listening", url=url, control_credential=where)
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("http.exposed", host=host, note="GET endpoints need no token")
    return runner
