"""A seeded synthetic NSE-like market: the embedded default for ``make demo`` and tests.

Several symbols driven by one market factor (correlated), GARCH(1,1) volatility clustering, a
U-shaped intraday profile for both volatility and volume, and overnight opening gaps; 1-minute
bars on the 0.05 tick over the NSE session (09:15–15:29 IST, ``config.sessions.NSE``) on
weekdays. The same seed gives the same market. Like any data file, its bars then pass the loader's
validation in the run's session, which drops and counts what lies outside other hours.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from config.sessions import IST, NSE, SessionTimes, parse_interval
from engine.data.loader import LoadedBars, assemble_bars, validate_bars
from engine.data.quality import DataQuality

NAMES = [
    "RELIANCE",
    "INFY",
    "HDFCBANK",
    "TCS",
    "ICICIBANK",
    "SBIN",
    "ITC",
    "LT",
    "AXISBANK",
    "KOTAKBANK",
    "BHARTIARTL",
    "HINDUNILVR",
]


@dataclass(frozen=True)
class SyntheticMarket:
    symbols: int = 5
    days: int = 60
    seed: int = 7
    start: date = date(2024, 1, 1)
    correlation: float = 0.5
    daily_vol: float = 0.015
    gap_vol: float = 0.005
    drift_per_day: float = 0.0002

    def symbol_names(self) -> list[str]:
        return [NAMES[i] if i < len(NAMES) else f"SYN{i:03d}" for i in range(self.symbols)]

    def frame(self) -> pd.DataFrame:
        """Long 1-minute frame: ts (IST), symbol, open, high, low, close, volume."""
        rng = np.random.default_rng(self.seed)
        days = pd.bdate_range(self.start, periods=self.days)
        minutes = NSE.length_minutes
        n_sym = self.symbols
        steps = len(days) * minutes
        # U-shape: busier and more volatile near the open and the close
        x = np.linspace(-1.0, 1.0, minutes)
        shape = 0.6 + 1.2 * x**2
        shape /= np.sqrt(np.mean(shape**2))
        base_var = (self.daily_vol**2) / minutes
        # GARCH(1,1) on the standardised shock, so the intraday shape does not feed back
        omega, alpha, beta = base_var * 0.01, 0.05, 0.94
        var = np.full(n_sym, base_var)
        rho = self.correlation
        shocks_m = rng.standard_normal(steps)
        shocks_i = rng.standard_normal((steps, n_sym))
        rets = np.empty((steps, n_sym))
        for t in range(steps):
            z = np.sqrt(rho) * shocks_m[t] + np.sqrt(1.0 - rho) * shocks_i[t]
            r = np.sqrt(var) * shape[t % minutes] * z
            rets[t] = r
            var = omega + (alpha * z * z + beta) * var
        rets += self.drift_per_day / minutes
        gaps = rng.normal(0.0, self.gap_vol, (len(days), n_sym))
        rets[::minutes] += gaps
        start_px = rng.uniform(200.0, 3000.0, n_sym)
        close = start_px * np.exp(np.cumsum(rets, axis=0))
        open_ = np.empty_like(close)
        open_[1:] = close[:-1]
        open_[0] = start_px
        open_[::minutes] = close[::minutes] / np.exp(rets[::minutes] - gaps)  # gap in the open
        wick = np.abs(rng.normal(0.0, 1.0, (steps, n_sym))) * np.sqrt(base_var) * 0.5
        high = np.maximum(open_, close) * (1.0 + wick)
        low = np.minimum(open_, close) * (
            1.0 - np.abs(rng.normal(0.0, 1.0, (steps, n_sym))) * np.sqrt(base_var) * 0.5
        )
        tick = 0.05
        # on the tick, and exactly the nearest double to a 2-decimal price (as vendors send)
        open_, close = (
            np.round(np.round(open_ / tick) * tick, 2),
            np.round(np.round(close / tick) * tick, 2),
        )
        high = np.maximum(np.round(np.ceil(high / tick - 1e-9) * tick, 2), np.maximum(open_, close))
        low = np.minimum(np.round(np.floor(low / tick + 1e-9) * tick, 2), np.minimum(open_, close))
        volume = np.round(
            rng.lognormal(8.0, 0.5, (steps, n_sym)) * np.tile(shape**2, len(days))[:, None]
        )
        session_open = pd.Timedelta(hours=NSE.open.hour, minutes=NSE.open.minute)
        day_ts = (pd.DatetimeIndex(days) + session_open).to_numpy()  # naive wall-clock IST
        ts = (day_ts[:, None] + np.arange(minutes) * np.timedelta64(1, "m")).ravel()
        stamps = pd.DatetimeIndex(ts).tz_localize(IST)
        names = self.symbol_names()
        frames = [
            pd.DataFrame(
                {
                    "ts": stamps,
                    "symbol": names[j],
                    "open": open_[:, j],
                    "high": high[:, j],
                    "low": low[:, j],
                    "close": close[:, j],
                    "volume": volume[:, j],
                }
            )
            for j in range(n_sym)
        ]
        return pd.concat(frames, ignore_index=True)

    def fingerprint(self) -> str:
        return "synthetic-" + hashlib.sha256(repr(asdict(self)).encode()).hexdigest()[:12]

    def bars(self, interval: str = "5minute", session: SessionTimes = NSE) -> LoadedBars:
        """The market through the same validation and resampling as file input, in ``session``
        (the run's hours; by default the NSE hours the market is generated in)."""
        quality = DataQuality()
        frame = validate_bars(
            self.frame(), f"synthetic(seed={self.seed})", quality, session=session
        )
        minutes = parse_interval(interval, session)
        return assemble_bars([frame], quality, minutes, self.fingerprint(), session=session)
