"""The exchange's clock: its time zone, its session hours and session arithmetic on UTC epoch ns.

The one definition of each: every module that needs the zone or the NSE hours imports them from
here. India has no daylight saving, so Asia/Kolkata is a fixed +05:30 offset and session maths
can be integer arithmetic on epoch nanoseconds — the hot paths (feeds, square-off, features)
never touch datetime objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

#: The exchange's zone by name: for what takes a name rather than a tzinfo (Arrow schemas,
#: pandas dtype strings such as ``datetime64[ns, Asia/Kolkata]``).
IST_ZONE_NAME: Final = "Asia/Kolkata"
#: The same zone as a tzinfo: for ``datetime`` arithmetic and pandas' tz_convert / tz_localize.
IST: Final = ZoneInfo(IST_ZONE_NAME)

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000
IST_OFFSET_NS = (5 * 60 + 30) * NS_PER_MINUTE


def minute_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True)
class SessionTimes:
    """A trading session's hours and the intraday square-off time (all IST, whole minutes).

    The defaults are the regular NSE cash session — the one place those hours are written
    down (``NSE`` below; ``config.settings.SessionSettings`` takes its defaults from it). What a
    run uses is its settings' ``session.times``, handed by the caller to whatever needs hours
    (loader, resampling, features, metrics, the Kite bar feed): the core never reads the
    environment, so ``TRADER_SESSION__OPEN`` moves everything or nothing.
    """

    open: time = time(9, 15)
    close: time = time(15, 30)
    square_off: time = time(15, 20)

    def __post_init__(self) -> None:
        for name in ("open", "close", "square_off"):
            t = getattr(self, name)
            if t.second or t.microsecond or t.tzinfo is not None:
                raise ValueError(f"session {name} {t} must be a whole minute of IST wall time")
        if not self.open < self.close:
            raise ValueError(f"session open {self.open} must be before its close {self.close}")

    @property
    def open_minute(self) -> int:
        return minute_of_day(self.open)

    @property
    def close_minute(self) -> int:
        return minute_of_day(self.close)

    @property
    def square_off_minute(self) -> int:
        return minute_of_day(self.square_off)

    @property
    def length_minutes(self) -> int:
        return self.close_minute - self.open_minute

    def bars_per_session(self, interval_minutes: int) -> int:
        return -(-self.length_minutes // interval_minutes)


#: The regular NSE session: the defaults, and what data generated to look like NSE follows.
NSE = SessionTimes()


def local_minute(ts_ns: int) -> int:
    """Minute of the IST day for a UTC epoch-ns timestamp."""
    return ((ts_ns + IST_OFFSET_NS) % NS_PER_DAY) // NS_PER_MINUTE


def local_day(ts_ns: int) -> int:
    """IST calendar day number (days since 1970-01-01 in IST)."""
    return (ts_ns + IST_OFFSET_NS) // NS_PER_DAY


def local_minutes(ts_ns: np.ndarray) -> np.ndarray:
    return ((ts_ns + IST_OFFSET_NS) % NS_PER_DAY) // NS_PER_MINUTE


def local_days(ts_ns: np.ndarray) -> np.ndarray:
    return (ts_ns + IST_OFFSET_NS) // NS_PER_DAY


_INTERVAL = re.compile(r"^(\d*)\s*(minute|min|m|hour|h)$")


def parse_interval(text: str, session: SessionTimes = NSE) -> int:
    """'minute', '5minute', '15min', '1hour' → minutes, at most one ``session``.

    Raises ValueError naming the text. The bound is a sanity check of the syntax' result;
    callers holding the run's session (settings, the loader) pass it.
    """
    match = _INTERVAL.match(text.strip().lower())
    if not match:
        raise ValueError(
            f"interval {text!r} is not understood; use e.g. 1minute, 3minute, 5minute, 15minute"
        )
    count = int(match.group(1) or 1)
    minutes = count * (60 if match.group(2) in {"hour", "h"} else 1)
    if not 1 <= minutes <= session.length_minutes:
        raise ValueError(
            f"interval {text!r} must be between 1 minute and one session "
            f"({session.length_minutes} minutes)"
        )
    return minutes


def epoch_ns(ts: pd.Series) -> np.ndarray:
    """tz-aware timestamps of any resolution → int64 UTC epoch nanoseconds (the one
    conversion the loader, the replay, the feature calculator and the datasets share)."""
    ns: np.ndarray = (
        ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    ).view(np.int64)
    return ns
