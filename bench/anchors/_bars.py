"""Shared plumbing for the anchor scripts: bar loading, CLI and the one-line JSON report.

The anchors run in ``.venv-bench`` (backtrader, NautilusTrader) and must not import the
project's packages, so the session filter and report format live here instead. Keeping them in
one place guarantees every anchor sees exactly the same bars and prints the same fields, which is
what makes their numbers comparable with ``bench/bench_backtest.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REQUIRED_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
SESSION_OPEN_MINUTE = 9 * 60 + 15  # 09:15 IST, first regular-session bar start
SESSION_CLOSE_MINUTE = 15 * 60 + 30  # 15:30 IST, exclusive: last bar starts at 15:29
IST = "Asia/Kolkata"


class BarFileError(ValueError):
    """The bar file cannot be used; the message names the file and the offending field."""


def parse_args(description: str) -> argparse.Namespace:
    """Parse the CLI shared by every anchor so the harness can call them interchangeably."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="parquet of 1-minute bars")
    parser.add_argument("--fast", type=int, default=10, help="fast SMA period (bars)")
    parser.add_argument("--slow", type=int, default=30, help="slow SMA period (bars)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, fresh engine each")
    args = parser.parse_args()
    if not 0 < args.fast < args.slow:
        parser.error(f"need 0 < --fast < --slow, got fast={args.fast} slow={args.slow}")
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    return args


def load_session_bars(path: Path) -> pd.DataFrame:
    """Read one symbol's bars and keep the regular session (bar starts 09:15–15:29 IST).

    Pre-open and after-hours rows exist in the source files; dropping them here matches the
    project's own loader so all engines trade the same ~92k bars.
    """
    if not path.is_file():
        raise BarFileError(f"{path}: no such file")
    frame = pd.read_parquet(path)
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise BarFileError(f"{path}: missing column(s) {', '.join(missing)}")
    if not isinstance(frame["ts"].dtype, pd.DatetimeTZDtype):
        raise BarFileError(f"{path}: column 'ts' must be tz-aware, got {frame['ts'].dtype}")
    symbols = frame["symbol"].unique()
    if len(symbols) != 1:
        raise BarFileError(f"{path}: expected one symbol, found {len(symbols)}")
    for name in ("open", "high", "low", "close"):
        bad = frame.index[frame[name].isna() | (frame[name] <= 0)]
        if len(bad):
            raise BarFileError(f"{path}: row {bad[0]} field '{name}' is missing or not positive")

    ts = frame["ts"].dt.tz_convert(IST)
    minute_of_day = ts.dt.hour * 60 + ts.dt.minute
    in_session = (minute_of_day >= SESSION_OPEN_MINUTE) & (minute_of_day < SESSION_CLOSE_MINUTE)
    bars = frame.loc[in_session, ["open", "high", "low", "close", "volume"]].copy()
    bars.insert(0, "ts", ts[in_session])
    bars = bars.sort_values("ts", kind="stable").reset_index(drop=True)
    if bars["ts"].duplicated().any():
        row = int(bars.index[bars["ts"].duplicated()][0])
        raise BarFileError(f"{path}: duplicate timestamp {bars['ts'].iloc[row]} (row {row})")
    if bars.empty:
        raise BarFileError(f"{path}: no bars inside 09:15–15:30 IST")
    return bars


@dataclass
class RunOutcome:
    """What one backtest run produced, for the plausibility check against other engines."""

    trades: int
    total_pnl: float
    open_position: float = 0.0


@dataclass
class Measurement:
    """Timings and outcome of ``repeat`` fresh runs; serialised as the anchor's JSON line."""

    framework: str
    version: str
    bars: int
    load_seconds: float
    notes: str
    run_seconds: list[float] = field(default_factory=list)
    build_seconds: list[float] = field(default_factory=list)
    outcome: RunOutcome | None = None

    def as_json(self) -> str:
        median = statistics.median(self.run_seconds)
        build = statistics.median(self.build_seconds)
        outcome = self.outcome or RunOutcome(trades=0, total_pnl=0.0)
        record: dict[str, Any] = {
            "framework": self.framework,
            "version": self.version,
            "bars": self.bars,
            "run_seconds": [round(s, 4) for s in self.run_seconds],
            "median_seconds": round(median, 4),
            "bars_per_second": round(self.bars / median, 1),
            "trades": outcome.trades,
            "total_pnl": round(outcome.total_pnl, 2),
            "open_position_at_end": outcome.open_position,
            "setup_seconds": round(self.load_seconds + build, 4),
            "load_seconds": round(self.load_seconds, 4),
            "build_seconds": round(build, 4),
            "notes": self.notes,
        }
        return json.dumps(record)


def measure(
    repeat: int,
    build: Callable[[], Any],
    run: Callable[[Any], RunOutcome],
    measurement: Measurement,
    teardown: Callable[[Any], None] | None = None,
) -> Measurement:
    """Build a fresh engine and time only its run, ``repeat`` times.

    Building (engine, venue, data feed) is timed apart from running, so the reported throughput
    is the event loop's and not the framework's setup cost; ``teardown`` (releasing an engine's
    resources) is likewise left out of the timing.
    """
    for _ in range(repeat):
        started = time.perf_counter()
        engine = build()
        built = time.perf_counter()
        outcome = run(engine)
        finished = time.perf_counter()
        measurement.build_seconds.append(built - started)
        measurement.run_seconds.append(finished - built)
        measurement.outcome = outcome
        if teardown is not None:
            teardown(engine)
    return measurement


def report_failure(error: Exception) -> int:
    """Print a one-line error to stderr (stdout is reserved for the JSON line)."""
    print(f"error: {error}", file=sys.stderr)
    return 2
