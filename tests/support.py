"""Helpers shared by tests (import as ``tests.support``)."""

from __future__ import annotations


def make_bars(
    closes: dict[str, list[float]],
    start: str = "2024-01-02 09:15",
    interval: str = "1minute",
    spread: float = 0.0,
):
    """LoadedBars from close paths (open = previous close), through the real validation."""
    import numpy as np
    import pandas as pd

    from engine.data.loader import assemble_bars, validate_bars
    from engine.data.quality import DataQuality
    from engine.sessions import parse_interval

    frames = []
    for symbol, path in closes.items():
        c = np.asarray(path, dtype=float)
        o = np.concatenate([[c[0]], c[:-1]])
        minutes = np.arange(c.size)
        # keep inside the session: 375 one-minute bars per day, then the next weekday
        day, minute = divmod(minutes, 375)
        days = pd.bdate_range(pd.Timestamp(start).normalize(), periods=int(day.max()) + 1)
        base = pd.Timestamp(start) - pd.Timestamp(start).normalize()
        ts = days[day] + base + pd.to_timedelta(minute, "min")
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "symbol": symbol,
                    "open": o,
                    "high": np.maximum(o, c) + spread,
                    "low": np.minimum(o, c) - spread,
                    "close": c,
                    "volume": 100.0,
                }
            )
        )
    quality = DataQuality()
    frame = validate_bars(pd.concat(frames, ignore_index=True), "test-bars", quality)
    return assemble_bars([frame], quality, parse_interval(interval), "test")
