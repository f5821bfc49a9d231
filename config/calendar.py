"""The NSE trading calendar: weekdays minus configured holidays, sessions in IST.

Holidays are a setting (``session.holidays``, e.g. ``TRADER_SESSION__HOLIDAYS='["2026-01-26"]'``)
because the exchange publishes them yearly; the engine ships no guessed list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from config.sessions import IST
from config.settings import SessionSettings


@dataclass(frozen=True)
class NseCalendar:
    session: SessionSettings

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.session.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The session's open and close on ``day`` (IST)."""
        return (
            datetime.combine(day, self.session.open, IST),
            datetime.combine(day, self.session.close, IST),
        )

    def current_or_next(self, now: datetime) -> tuple[datetime, datetime]:
        """The session in progress at ``now``, else the next one (skipping weekends/holidays)."""
        day = now.astimezone(IST).date()
        for offset in range(0, 15):
            candidate = day + timedelta(days=offset)
            if not self.is_trading_day(candidate):
                continue
            start, end = self.window(candidate)
            if now < end:
                return start, end
        raise ValueError("no trading day in the next two weeks: check session.holidays")
