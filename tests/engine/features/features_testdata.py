"""Bars for the feature tests: real NSE index bars resampled to 5 minutes, and synthetic edge
cases (flat stretches, zero volume, tiny and huge prices) that exercise TA-Lib's zero guards."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from tests.support.paths import NSE_DIR

NSE_FILES = {"NIFTY 50": "NIFTY50_1min_2021.parquet", "NIFTY BANK": "BANKNIFTY_1min_2021.parquet"}


@lru_cache(maxsize=4)
def nse_5min(symbol: str) -> pd.DataFrame:
    """One index's 2021 bars: 09:15–15:29 IST, 5-minute buckets aligned to 09:15.

    Index volume is 0, so a deterministic synthetic volume is attached for the volume features.
    """
    raw = pd.read_parquet(NSE_DIR / NSE_FILES[symbol])
    minute = raw["ts"].dt.hour * 60 + raw["ts"].dt.minute
    raw = raw[(minute >= 555) & (minute < 930)].copy()
    minute = raw["ts"].dt.hour * 60 + raw["ts"].dt.minute
    raw["bucket"] = raw["ts"] - pd.to_timedelta((minute - 555) % 5, unit="min")
    bars = (
        raw.sort_values("ts")
        .groupby("bucket")
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
        )
        .reset_index()
        .rename(columns={"bucket": "ts"})
    )
    rng = np.random.default_rng(abs(hash(symbol)) % 2**32)
    bars["volume"] = rng.integers(1_000, 200_000, len(bars)).astype(np.float64)
    bars.insert(1, "symbol", symbol)
    return bars


def session_stamps(n: int, start: str = "2022-01-03", per_day: int = 75) -> pd.Series:
    """``n`` 5-minute bar starts, ``per_day`` per weekday session from 09:15 IST."""
    days = pd.bdate_range(start, periods=n // per_day + 2, tz="Asia/Kolkata")
    stamps = [d + pd.Timedelta(minutes=555 + 5 * j) for d in days for j in range(per_day)]
    return pd.Series(stamps[:n])


def edge_case_bars(n: int = 4000, seed: int = 7, symbol: str = "EDGE") -> pd.DataFrame:
    """A random walk interrupted by flat stretches (circuit-locked), zero-volume runs,
    constant-volume runs, a 5x jump and a crash, and a stretch of sub-rupee prices."""
    wanted, n = n, max(n, 4000)
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.002, n)
    steps[800:900] = 0.0  # locked: identical bars
    steps[1500] = np.log(5.0)
    steps[1501] = np.log(0.15)
    close = 250.0 * np.exp(np.cumsum(steps))
    close[2500:3000] *= 0.0004  # tiny prices (~0.1)
    close = np.round(close, 6)
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.0005, n))
    spread = np.abs(rng.normal(0, 0.001, n)) * np.minimum(open_, close)
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread * rng.uniform(0.2, 1.0, n)
    flat = slice(800, 900)
    open_[flat] = high[flat] = low[flat] = close[flat] = close[799]
    volume = rng.integers(0, 50_000, n).astype(np.float64)
    volume[1000:1100] = 0.0
    volume[1200:1260] = 12_345.0
    bars = pd.DataFrame(
        {
            "ts": session_stamps(n),
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    return bars.iloc[:wanted].copy()


def derived_input(name: str, bars: pd.DataFrame) -> tuple[np.ndarray, int]:
    """A spec derived input as an array, and the bar index its first element belongs to."""
    if name == "logret_pct":
        close = bars["close"].to_numpy(dtype=np.float64)
        return 100.0 * np.log(close[1:] / close[:-1]), 1
    raise KeyError(f"no test implementation of derived input {name!r}")


@st.composite
def random_bar_paths(draw: st.DrawFn, n_bars: int) -> dict[str, np.ndarray]:
    """One symbol's random OHLCV path (arrays 'o','h','l','c','v' and a 'present' mask):
    any price level, flat stretches, jumps, zero/huge volume, gaps, a late join."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    level = draw(st.sampled_from([0.05, 1.0, 137.5, 35_000.0, 2e6]))
    vol = draw(st.sampled_from([0.0, 1e-5, 0.003, 0.2]))
    steps = rng.normal(0.0, vol, n_bars)
    if draw(st.booleans()):  # a huge jump (and maybe back)
        at = draw(st.integers(0, n_bars - 1))
        steps[at] += np.log(draw(st.sampled_from([1e-3, 0.05, 20.0, 1e3])))
    close = level * np.exp(np.cumsum(steps))
    raw = draw(st.lists(st.floats(1e-3, 1e7, allow_nan=False), min_size=0, max_size=25))
    if raw:  # explicit prices hypothesis can shrink
        at = draw(st.integers(0, n_bars - len(raw)))
        close[at : at + len(raw)] = raw
    if draw(st.booleans()):  # a flat stretch of identical bars
        a = draw(st.integers(0, n_bars - 1))
        b = draw(st.integers(a, n_bars))
        close[a:b] = close[a]
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0.0, vol / 2, n_bars))
    if draw(st.booleans()):
        wick[:] = 0.0  # high == low == open == close when also flat
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) / (1 + wick)
    volume_kind = draw(st.sampled_from(["zero", "ints", "huge", "mixed"]))
    volume = {
        "zero": np.zeros(n_bars),
        "ints": rng.integers(0, 10_000, n_bars).astype(float),
        "huge": rng.uniform(0, 1e12, n_bars),
        "mixed": np.where(rng.random(n_bars) < 0.5, 0.0, rng.uniform(0, 1e6, n_bars)),
    }[volume_kind]
    present = rng.random(n_bars) < draw(st.sampled_from([1.0, 0.9, 0.5]))
    present[: draw(st.integers(0, n_bars // 3))] = False  # joins late
    return {"o": open_, "h": high, "l": low, "c": close, "v": volume, "present": present}
