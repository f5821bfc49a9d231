"""Helpers shared by tests (import as ``tests.support``)."""

from __future__ import annotations

from app.runners.backtest import run_backtest
from app.runners.paper import trading_session
from config.sessions import NSE
from config.settings import load_settings
from engine.data.synthetic import SyntheticMarket
from engine.store.database import open_database
from engine.store.recorder import RunRecorder
from strategies.sma_cross import SmaCross, SmaCrossParams


def make_bars(
    closes: dict[str, list[float]],
    start: str = "2024-01-02 09:15",
    interval: str = "1minute",
    spread: float = 0.0,
):
    """LoadedBars from close paths (open = previous close), through the real validation."""
    import numpy as np
    import pandas as pd

    from config.sessions import parse_interval
    from engine.data.loader import assemble_bars, validate_bars
    from engine.data.quality import DataQuality

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
    frame = validate_bars(pd.concat(frames, ignore_index=True), "test-bars", quality, session=NSE)
    return assemble_bars([frame], quality, parse_interval(interval), "test", session=NSE)


# ---- promotion evidence: a trending synthetic market where sma_cross(2, 6) makes money -------
PARAMS = SmaCrossParams(2, 6, 10)


def trending(days: int):
    return SyntheticMarket(symbols=2, days=days, seed=3, drift_per_day=0.01, daily_vol=0.008).bars(
        "15minute"
    )


async def stored_runs(db_path, paper_days: int, paper_params=PARAMS):
    engine = open_database(str(db_path))
    bt = RunRecorder(engine, "backtest")
    await run_backtest(trending(25), SmaCross(PARAMS), load_settings(interval="15minute"), bt)
    session = trading_session(
        trending(paper_days),
        SmaCross(paper_params),
        load_settings("paper", interval="15minute"),
        engine,
    )
    await session.run()
    return engine, bt.run_id, session.status.run_id
