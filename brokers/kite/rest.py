"""A small asyncio client for the Kite REST endpoints we use, with errors mapped to types.

Why not the official client here: it is blocking (requests), and a 4-year, 100-symbol download
is hundreds of paced requests that want an event loop, shared pacing and typed retries. The
official client remains the reference for shapes (tests point it at the same fake).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from types import TracebackType
from typing import Any, NamedTuple

import aiohttp

from brokers.kite.auth import KiteCredentials
from brokers.kite.errors import (
    KiteError,
    KiteInputError,
    KiteNetworkError,
    KiteRateLimitError,
    KiteResponseError,
    KiteServerError,
    KiteTokenError,
)
from brokers.kite.settings import KiteSettings

KITE_VERSION_HEADER = {"X-Kite-Version": "3"}
REQUEST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class Instrument(NamedTuple):
    """One row of Kite's instruments dump (the fields we use are typed; the rest kept as text)."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: float
    expiry: str
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str


def parse_instruments_csv(text: str, source: str = "instruments") -> list[Instrument]:
    """Kite's instruments CSV → rows. Errors name the source and line."""
    reader = csv.DictReader(io.StringIO(text))
    rows: list[Instrument] = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append(
                Instrument(
                    instrument_token=int(row["instrument_token"]),
                    exchange_token=int(row["exchange_token"]),
                    tradingsymbol=row["tradingsymbol"],
                    name=row["name"],
                    last_price=float(row["last_price"] or 0),
                    expiry=row["expiry"],
                    strike=float(row["strike"] or 0),
                    tick_size=float(row["tick_size"] or 0),
                    lot_size=int(row["lot_size"] or 0),
                    instrument_type=row["instrument_type"],
                    segment=row["segment"],
                    exchange=row["exchange"],
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KiteResponseError(f"{source}: line {line}: bad instrument row ({exc})") from None
    return rows


def _error_from_response(status: int, body: Any, retry_after: str | None) -> KiteError:
    """The typed error for a failed answer. Kite's own message is kept — it is what an
    operator needs to read — and may quote the request's credentials (a 403 echoing the
    ``Authorization`` header); ``KiteError`` scrubs them as it is built."""
    message = body.get("message", "") if isinstance(body, dict) else ""
    error_type = body.get("error_type", "") if isinstance(body, dict) else ""
    text = message or f"HTTP {status}"
    if error_type == "TokenException" or (status == 403 and not error_type):
        return KiteTokenError(text, status)
    if status == 429:
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return KiteRateLimitError(f"rate limited: {text}", status, error_type, wait)
    if status >= 500:
        return KiteServerError(f"server error {status}: {text}", status, error_type)
    return KiteInputError(f"request refused ({status} {error_type}): {text}", status, error_type)


class KiteRestClient:
    """``async with KiteRestClient(settings, credentials) as kite: await kite.instruments()``."""

    def __init__(
        self,
        settings: KiteSettings,
        credentials: KiteCredentials,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> KiteRestClient:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _headers(self) -> dict[str, str]:
        token = self._credentials.require_access_token()
        return {
            **KITE_VERSION_HEADER,
            "Authorization": f"token {self._credentials.api_key}:{token}",
        }

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
    ) -> tuple[str, str]:
        if self._session is None:
            raise RuntimeError("KiteRestClient used outside `async with`")
        url = f"{self.settings.api_root}{path}"
        try:
            async with self._session.request(
                method, url, params=params, json=json_body, headers=self._headers()
            ) as response:
                text = await response.text()
                content_type = response.headers.get("Content-Type", "")
                if response.status >= 400:
                    try:
                        body = json.loads(text)
                    except ValueError:
                        body = None
                    raise _error_from_response(
                        response.status, body, response.headers.get("Retry-After")
                    )
                return content_type, text
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the KiteError scrubs its message: a client error may quote the request
            raise KiteNetworkError(f"{method} {path}: {str(exc) or type(exc).__name__}") from None

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The ``data`` member of a successful JSON answer."""
        return self._data("GET", path, *await self._request("GET", path, params))

    async def post_json(self, path: str, body: Any) -> Any:
        """POST a JSON body (Kite's margin calculators take one); the answer's ``data``."""
        return self._data("POST", path, *await self._request("POST", path, json_body=body))

    @staticmethod
    def _data(method: str, path: str, content_type: str, text: str) -> Any:
        try:
            body = json.loads(text)
        except ValueError:
            raise KiteResponseError(
                f"{method} {path}: answer is not JSON ({content_type})"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise KiteResponseError(f"{method} {path}: answer lacks status=success and data")
        return body["data"]

    async def instruments(self, exchange: str | None = None) -> list[Instrument]:
        path = f"/instruments/{exchange}" if exchange else "/instruments"
        _, text = await self._request("GET", path)
        return parse_instruments_csv(text, source=f"GET {path}")

    async def historical_candles(
        self,
        instrument_token: int,
        interval: str,
        start: datetime | date,
        end: datetime | date,
    ) -> list[list[Any]]:
        """Raw candle rows ``[ts, open, high, low, close, volume(, oi)]``; both ends inclusive."""
        path = f"/instruments/historical/{instrument_token}/{interval}"
        params = {
            "from": start.strftime(REQUEST_TIME_FORMAT),
            "to": end.strftime(REQUEST_TIME_FORMAT),
            "continuous": 0,
            "oi": 0,
        }
        data = await self.get_json(path, params)
        candles = data.get("candles") if isinstance(data, dict) else None
        if not isinstance(candles, list):
            raise KiteResponseError(f"GET {path}: answer has no candles list")
        return candles
