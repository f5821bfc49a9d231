"""Where Kite lives and how hard we may hit it.

Endpoints are settings, not constants, so every component (REST history, ticker websocket,
login) can be pointed at the local fake in tests, or at a proxy, without code changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_API_ROOT = "https://api.kite.trade"
DEFAULT_WS_URL = "wss://ws.kite.trade"
DEFAULT_SECRETS_FILE = Path("~/.config/nse-trader/kite.env")

ENV_API_ROOT = "KITE_API_ROOT"
ENV_WS_URL = "KITE_WS_URL"
ENV_SECRETS_FILE = "KITE_SECRETS_FILE"


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

    @property
    def secrets_path(self) -> Path:
        return self.secrets_file.expanduser()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> KiteSettings:
        """Defaults, then ``KITE_API_ROOT`` / ``KITE_WS_URL`` / ``KITE_SECRETS_FILE``, then
        explicit keyword overrides."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, field in (
            (ENV_API_ROOT, "api_root"),
            (ENV_WS_URL, "ws_url"),
            (ENV_SECRETS_FILE, "secrets_file"),
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
