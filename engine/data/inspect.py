"""What the loader would read from files, file by file, without running anything: the rows it
keeps, the symbols, the date range, the bar interval the timestamps show, and what was dropped
or repaired (``trader data check``). The files go through the loader's own reading and
validation (``engine.data.loader.read_bar_file``), so what is reported is what a run gets —
there is no second parser."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import NS_PER_MINUTE, SessionTimes, epoch_ns, local_days
from config.settings import DataSettings
from engine.data.loader import bar_files, read_bar_file
from engine.data.quality import DataError, DataQuality


@dataclass
class FileReport:
    path: str
    rows_read: int = 0
    bars_kept: int = 0
    symbols: list[str] = field(default_factory=list)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    interval_minutes: int | None = None
    sessions: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    #: why the file is not read (skipped in a directory, or refused); empty when it is read
    problem: str = ""


def native_interval(frame: pd.DataFrame) -> int | None:
    """The bar interval the timestamps show: the most common step, in whole minutes, between
    consecutive bars of one symbol within one session (None with fewer than two bars)."""
    ns = epoch_ns(frame["ts"])
    same = (frame["symbol"].to_numpy()[1:] == frame["symbol"].to_numpy()[:-1]) & (
        local_days(ns[1:]) == local_days(ns[:-1])
    )
    steps = np.diff(ns)[same] // NS_PER_MINUTE
    steps = steps[steps > 0]
    if not len(steps):
        return None
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


def inspect_files(
    paths: Iterable[str | Path], *, session: SessionTimes, data: DataSettings | None = None
) -> tuple[list[FileReport], list[str]]:
    """One report per file the loader would read (a refused file's report names why), and the
    directory entries it would skip."""
    listing = DataQuality()
    reports = []
    for path, lenient in bar_files(paths, listing):
        quality = DataQuality()
        report = FileReport(str(path))
        try:
            frame = read_bar_file(path, quality, session=session, data=data, lenient=lenient)
        except DataError as exc:
            report.problem = f"refused: {exc}"
            reports.append(report)
            continue
        if frame is None:
            report.problem = quality.skipped[0] if quality.skipped else "skipped"
            reports.append(report)
            continue
        counts = quality.per_file.get(str(path), Counter())
        report.rows_read = quality.rows_read
        report.bars_kept = len(frame)
        report.dropped = {k: v for k, v in sorted(counts.items()) if k in quality.dropped}
        report.notes = {k: v for k, v in sorted(counts.items()) if k in quality.notes}
        if len(frame):
            report.symbols = sorted(frame["symbol"].unique().tolist())
            report.first, report.last = frame["ts"].min(), frame["ts"].max()
            report.interval_minutes = native_interval(frame)
            report.sessions = int(frame["ts"].dt.date.nunique())
        reports.append(report)
    return reports, listing.skipped
