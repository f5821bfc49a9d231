"""Candles for the fake Kite: the recorded ones where we have them, deterministic ones elsewhere.

The recorded fixture holds six minute candles; a download test needs months of them for several
tokens. ``SyntheticCandles`` makes every NSE session minute (09:15–15:29 IST, weekdays) of any
token from a hash of (token, minute), so any range, chunked any way, gives the same candles —
exactly the property a resumable download must preserve. The recorded minute candles replace the
synthetic ones at their timestamps, so the fake serves the real fixture where one exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from config.sessions import NSE

SESSION_START_MINUTE = NSE.open_minute  # Kite serves the regular NSE session
SESSION_MINUTES = NSE.length_minutes
INTERVAL_MINUTES = {
    "minute": 1,
    "3minute": 3,
    "5minute": 5,
    "10minute": 10,
    "15minute": 15,
    "30minute": 30,
    "60minute": 60,
    "day": SESSION_MINUTES,
}
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: well-spread 64-bit hash, vectorised."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _uniform(token: int, minutes: np.ndarray, salt: int) -> np.ndarray:
    key = (np.uint64(token) << np.uint64(20)) ^ np.uint64(salt * 0x9E3779B9)
    with np.errstate(over="ignore"):
        bits = _mix(minutes.astype(np.uint64) ^ _mix(np.array([key], dtype=np.uint64)))
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _to_tick(x: np.ndarray) -> np.ndarray:
    return np.round(x * 20.0) / 20.0


def kite_time(ts: pd.DatetimeIndex) -> list[str]:
    """Naive IST timestamps → Kite's candle time strings ("2017-12-15T09:15:00+0530")."""
    return list(ts.strftime("%Y-%m-%dT%H:%M:%S+0530"))


class SyntheticCandles:
    """``candles(token, interval, start, end)`` → Kite candle rows, ``start``/``end`` inclusive
    naive IST datetimes."""

    def __init__(self, recorded_minute: Iterable[list[Any]] = ()) -> None:
        self._recorded = {row[0]: list(row) for row in recorded_minute}

    def minute_frame(self, token: int, first_day: datetime, last_day: datetime) -> pd.DataFrame:
        days = pd.bdate_range(first_day.date(), last_day.date())
        if len(days) == 0:
            return pd.DataFrame(columns=["ts", "open", "high", "low", "close", "volume"])
        offsets = np.arange(SESSION_MINUTES) + SESSION_START_MINUTE
        day_minutes = (days.values.astype("datetime64[m]").astype(np.int64))[:, None]
        minutes = (day_minutes + offsets[None, :]).ravel()
        base = 100.0 + (token % 997) * 3.0
        drift = base * (1 + 0.03 * np.sin(minutes / (60 * 24 * 9.0) + token % 7))
        close = _to_tick(drift * (1 + 0.004 * (_uniform(token, minutes, 1) - 0.5)))
        prev = drift * (1 + 0.004 * (_uniform(token, minutes - 1, 1) - 0.5))
        open_ = _to_tick(prev)
        high = np.maximum(
            np.maximum(open_, close),
            _to_tick(np.maximum(open_, close) * (1 + 0.002 * _uniform(token, minutes, 2))),
        )
        low = np.minimum(
            np.minimum(open_, close),
            _to_tick(np.minimum(open_, close) * (1 - 0.002 * _uniform(token, minutes, 3))),
        )
        volume = (50 + np.floor(_uniform(token, minutes, 4) * 5000)).astype(np.int64)
        ts = pd.DatetimeIndex(minutes.astype("datetime64[m]"))
        return pd.DataFrame(
            {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
        )

    def candles(self, token: int, interval: str, start: datetime, end: datetime) -> list[list[Any]]:
        step = INTERVAL_MINUTES[interval]
        minute = self.minute_frame(token, start, end)
        if minute.empty:
            return []
        frame = minute if step == 1 else self._aggregate(minute, step, day=interval == "day")
        mask = (frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] <= pd.Timestamp(end))
        frame = frame.loc[mask]
        stamps = kite_time(pd.DatetimeIndex(frame["ts"]))
        rows = [
            [t, float(o), float(h), float(lo), float(c), int(v)]
            for t, o, h, lo, c, v in zip(
                stamps,
                frame["open"],
                frame["high"],
                frame["low"],
                frame["close"],
                frame["volume"],
                strict=True,
            )
        ]
        if step == 1 and self._recorded:
            rows = [self._recorded.get(row[0], row) for row in rows]
        return rows

    @staticmethod
    def _aggregate(minute: pd.DataFrame, step: int, day: bool) -> pd.DataFrame:
        # Session-aligned buckets: every day has SESSION_MINUTES rows, bucket k starts at
        # 09:15 + k·step; a daily candle is stamped at midnight, as Kite does.
        per_day = SESSION_MINUTES
        n_days = len(minute) // per_day
        starts = np.arange(0, per_day, step)
        idx = (np.arange(n_days)[:, None] * per_day + starts[None, :]).ravel()
        ends = np.append(idx[1:], len(minute))
        o = minute["open"].to_numpy()[idx]
        c = minute["close"].to_numpy()[ends - 1]
        h = np.maximum.reduceat(minute["high"].to_numpy(), idx)
        lo = np.minimum.reduceat(minute["low"].to_numpy(), idx)
        v = np.add.reduceat(minute["volume"].to_numpy(), idx)
        ts = pd.DatetimeIndex(minute["ts"].to_numpy()[idx])
        if day:
            ts = ts.normalize()
        return pd.DataFrame({"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v})
