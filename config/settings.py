"""Typed settings for every component, with defaults per mode.

Every rate and limit the engine applies is here, so a run's behaviour is fully described by its
stored settings JSON. Environment overrides use the ``TRADER_`` prefix with ``__`` for nesting
(``TRADER_RISK__MAX_DRAWDOWN_PCT=15``).
"""

from __future__ import annotations

import json
import os
from datetime import date, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.sessions import NSE, SessionTimes, parse_interval


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostSettings(_Strict):
    """Zerodha intraday (MIS) equity charges; percentages are of turnover on that leg."""

    model: Literal["zerodha", "none"] = "zerodha"
    brokerage_pct: float = Field(0.03, ge=0)
    brokerage_cap: float = Field(20.0, ge=0, description="rupees per executed order")
    stt_sell_pct: float = Field(0.025, ge=0)
    exchange_txn_pct: float = Field(0.00297, ge=0, description="NSE transaction charges")
    sebi_per_crore: float = Field(10.0, ge=0)
    stamp_buy_pct: float = Field(0.003, ge=0)
    gst_pct: float = Field(18.0, ge=0, description="on brokerage + transaction + SEBI")


class ExecutionSettings(_Strict):
    slippage_bps: float = Field(0.0, ge=0, description="adverse, on market and stop fills")
    tick_size: float = Field(0.05, gt=0)


class SessionSettings(_Strict):
    """Session hours (IST; NSE's by default, from ``config.sessions``), square-off, holidays.

    ``times`` is what the hours-dependent parts of the engine take: callers hand it down, so
    an override (``TRADER_SESSION__OPEN=10:00``) reaches the loader, the resampling buckets, the
    features and the metrics as well as the risk gates.
    """

    open: time = NSE.open
    close: time = NSE.close
    square_off: time = NSE.square_off
    square_off_enabled: bool = True
    holidays: tuple[date, ...] = ()  # exchange holidays (weekends are never sessions)

    @property
    def times(self) -> SessionTimes:
        return SessionTimes(self.open, self.close, self.square_off)

    @model_validator(mode="after")
    def _valid_hours(self) -> SessionSettings:
        """Impossible hours (seconds, open not before close) are refused by SessionTimes."""
        _ = self.times
        return self


#: The default of ``data.max_bar_move_pct`` — also the live bar feed's default for ticks.
DEFAULT_MAX_BAR_MOVE_PCT = 50.0
#: ``data.date_format`` words; anything else must be a strptime format (it holds a ``%``)
DATE_FORMAT_WORDS = ("iso", "dayfirst", "monthfirst")


class DataSettings(_Strict):
    """How bar data is read and which bars are believed (README "Data input").

    ``date_format``: how text timestamps are read. ``None``/``"iso"``: ISO 8601 only
    (``2021-01-04 09:16[:00][+05:30]``), anything else refused, because ``04/01/2021`` is 4
    January to an Indian vendor and 1 April to pandas. ``"dayfirst"`` / ``"monthfirst"``: also
    DD/MM/YYYY resp. MM/DD/YYYY (``/``, ``-`` or ``.``); or a strptime format applied exactly
    (``"%d/%m/%Y %H:%M"``).

    ``epoch_unit``: numeric timestamps' unit; ``None`` detects it from the magnitude (the four
    units' plausible ranges never overlap), so declaring it only makes a wrong guess impossible.

    ``max_bar_move_pct`` / ``outlier_action``: the bad-print rule of ``engine.data.outliers``
    (a bar far from both neighbours that agree with each other), and whether such a bar is
    dropped and counted or refuses the file. The live bar feed rejects ticks by the same move.
    The default 50 is the widest move NSE's price bands allow inside one session (1.2 / 0.8).
    """

    date_format: str | None = None
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = None
    max_bar_move_pct: float = Field(DEFAULT_MAX_BAR_MOVE_PCT, gt=0)
    outlier_action: Literal["drop", "refuse"] = "drop"

    @field_validator("date_format")
    @classmethod
    def _known_date_format(cls, value: str | None) -> str | None:
        if value is None or value in DATE_FORMAT_WORDS or "%" in value:
            return value
        raise ValueError(
            f"{value!r} is neither {', '.join(DATE_FORMAT_WORDS)} nor a strptime format "
            "such as '%d/%m/%Y %H:%M'"
        )


class RiskSettings(_Strict):
    max_position_qty: int | None = Field(None, ge=1, description="per symbol, absolute")
    max_position_value: float | None = Field(None, gt=0, description="per symbol, rupees")
    max_gross_exposure: float = Field(5.0, gt=0, description="gross value / equity (MIS ~5x)")
    max_orders_per_minute: int = Field(120, ge=1)
    daily_loss_limit_pct: float = Field(5.0, gt=0, description="of start-of-day equity")
    reduce_drawdown_pct: float = Field(15.0, gt=0, description="ACTIVE → REDUCING")
    max_drawdown_pct: float = Field(20.0, gt=0, description="→ HALTED")
    flatten_on_halt: bool = True


class PromotionSettings(_Strict):
    """The seed's rule for going live; every threshold a setting."""

    min_backtest_sharpe: float = 1.5
    max_backtest_drawdown: float = Field(0.20, gt=0, le=1)
    min_paper_days: int = Field(20, ge=1, description="trading days (4 weeks)")
    max_paper_drawdown: float = Field(0.20, gt=0, le=1)
    min_profitable_folds: float = Field(
        0.5, ge=0, le=1, description="share of a walk-forward study's folds with positive P&L"
    )
    live_capital_cap: float = Field(50_000.0, gt=0, description="rupees")


class EngineSettings(_Strict):
    mode: Literal["backtest", "paper", "live"] = "backtest"
    capital: float = Field(1_000_000.0, gt=0)
    interval: str = "5minute"
    costs: CostSettings = CostSettings()
    execution: ExecutionSettings = ExecutionSettings()
    session: SessionSettings = SessionSettings()
    data: DataSettings = DataSettings()
    risk: RiskSettings = RiskSettings()
    promotion: PromotionSettings = PromotionSettings()

    @model_validator(mode="after")
    def _interval_fits_the_session(self) -> EngineSettings:
        parse_interval(self.interval, self.session.times)
        return self

    def as_json(self) -> str:
        return self.model_dump_json()


PROFILES: dict[str, dict[str, Any]] = {
    "backtest": {"mode": "backtest"},
    "paper": {"mode": "paper"},
    "live": {"mode": "live", "capital": 50_000.0},
}


class SettingsError(ValueError):
    """A setting is invalid; the message names it."""


#: extra ``Host`` names the daemon's HTTP API answers (``app.web.hosts``), comma-separated
HTTP_ALLOWED_HOSTS_ENV = "TRADER_HTTP_ALLOWED_HOSTS"
#: TRADER_* variables that configure the process, not the engine's settings
NOT_SETTINGS = frozenset(
    {
        "TRADER_DB",
        "TRADER_HOME",
        "TRADER_TOKEN",
        "TRADER_TOKEN_FILE",
        "TRADER_STRATEGY_PATH",
        HTTP_ALLOWED_HOSTS_ENV,
    }
)


def _env_overrides(prefix: str = "TRADER_") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith(prefix) or key in NOT_SETTINGS:
            continue
        path = key[len(prefix) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        try:
            node[path[-1]] = json.loads(value)
        except json.JSONDecodeError:
            node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(profile: str = "backtest", **overrides: Any) -> EngineSettings:
    """Profile defaults ← environment ← explicit overrides (CLI flags)."""
    if profile not in PROFILES:
        raise SettingsError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    data = _merge(_merge(PROFILES[profile], _env_overrides()), overrides)
    try:
        return EngineSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(filter(None, (".".join(str(p) for p in err["loc"]), err["msg"])))
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
