"""Where Kite lives, how hard we may hit it, and how orders meet Kite's rules for API orders.

Endpoints are settings, not constants, so every component (REST history, ticker websocket,
login) can be pointed at the local fake in tests, or at a proxy, without code changes.

Market protection defaults to -1, Kite's automatic band: Kite picks the band from the
instrument's price (wider for cheap stocks, narrower for expensive ones), which no single fixed
percentage does for a universe from ₹50 to ₹5,000 stocks, and it is what Kite's own apps use. A
percentage (``KITE_MARKET_PROTECTION=1.5``) caps the slippage explicitly instead. 0 is refused
here, as Kite refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from brokers.kite.order_params import MARKET_PROTECTION_AUTO, check_market_protection

DEFAULT_API_ROOT = "https://api.kite.trade"
DEFAULT_WS_URL = "wss://ws.kite.trade"
DEFAULT_SECRETS_FILE = Path("~/.config/nse-trader/kite.env")

ENV_API_ROOT = "KITE_API_ROOT"
ENV_WS_URL = "KITE_WS_URL"
ENV_SECRETS_FILE = "KITE_SECRETS_FILE"
ENV_MARKET_PROTECTION = "KITE_MARKET_PROTECTION"
ENV_REMAINDER_TIMEOUT = "KITE_MARKET_REMAINDER_TIMEOUT_S"
ENV_REMAINDER_REPLACEMENTS = "KITE_MARKET_REMAINDER_REPLACEMENTS"
ENV_FEED_SILENCE = "KITE_FEED_SILENCE_S"
ENV_TICK_SILENCE = "KITE_FEED_TICK_SILENCE_S"


class KiteSettingsError(ValueError):
    """A Kite setting (usually from the environment) is malformed."""


class KiteSettings(BaseModel):
    """Endpoints and client limits. ``KiteSettings.from_env()`` applies ``KITE_*`` overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_root: str = DEFAULT_API_ROOT
    ws_url: str = DEFAULT_WS_URL
    secrets_file: Path = DEFAULT_SECRETS_FILE
    request_timeout_s: float = Field(7.0, gt=0)
    # Kite allows 3 historical-candle requests per second per API key.
    historical_requests_per_s: int = Field(3, ge=1)
    historical_concurrency: int = Field(3, ge=1)
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    # Orders. MARKET / SL-M orders carry this market protection: -1 (Kite's automatic band) or
    # a percentage 0 < p <= 100 (see the module docstring for the default).
    market_protection: float = MARKET_PROTECTION_AUTO
    # A protected market order that meets no liquidity inside its band rests at the band's
    # limit: after this long the broker cancels the resting part ...
    market_remainder_timeout_s: float = Field(10.0, gt=0)
    # ... and re-places it at most this many times (0: never; the order ends partly filled).
    market_remainder_replacements: int = Field(1, ge=0)
    # The live feed's watchdog. Kite heartbeats every second: this long without any message
    # is a dead connection ...
    feed_silence_s: float = Field(5.0, gt=0)
    # ... and this long without a tick while instruments are subscribed, during the session, a
    # connection that lost its subscription. Either → stale data (no new entries), reconnect.
    feed_tick_silence_s: float = Field(30.0, gt=0)

    @field_validator("api_root")
    @classmethod
    def _http_root(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"api_root {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url {value!r} must start with ws:// or wss://")
        return value

    @field_validator("market_protection")
    @classmethod
    def _market_protection(cls, value: float) -> float:
        return check_market_protection(value, f"market_protection ({ENV_MARKET_PROTECTION})")

    @property
    def secrets_path(self) -> Path:
        return self.secrets_file.expanduser()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> KiteSettings:
        """Defaults, then ``KITE_API_ROOT`` / ``KITE_WS_URL`` / ``KITE_SECRETS_FILE`` /
        ``KITE_MARKET_PROTECTION`` / ``KITE_MARKET_REMAINDER_TIMEOUT_S`` /
        ``KITE_MARKET_REMAINDER_REPLACEMENTS`` / ``KITE_FEED_SILENCE_S`` /
        ``KITE_FEED_TICK_SILENCE_S``, then explicit keyword overrides."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, field in (
            (ENV_API_ROOT, "api_root"),
            (ENV_WS_URL, "ws_url"),
            (ENV_SECRETS_FILE, "secrets_file"),
            (ENV_MARKET_PROTECTION, "market_protection"),
            (ENV_REMAINDER_TIMEOUT, "market_remainder_timeout_s"),
            (ENV_REMAINDER_REPLACEMENTS, "market_remainder_replacements"),
            (ENV_FEED_SILENCE, "feed_silence_s"),
            (ENV_TICK_SILENCE, "feed_tick_silence_s"),
        ):
            if source.get(name):
                values[field] = source[name]
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise KiteSettingsError(f"invalid Kite settings: {problems}") from None
