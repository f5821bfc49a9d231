"""Walk-forward fold planning: calendar windows over the bars' timestamps, purged like the split.

A study walks through time: fold k trains on a window of ``train`` (rolling, or everything from
the start with ``expanding``) and is tested on the ``test`` window right after it; the next fold
moves ``step`` (default: ``test``) later, so test windows tile the period without overlap.

Between the last bar a fold's model may be trained on and its test window's first bar lies the
purge gap of the train/validation/test split (``models.dataset.purge_gap``: at least the label
horizon), counted in the bar clock of the data: the label of the last training bar looks
``horizon`` bars ahead, and must not see a test bar.

Pure: dates and timestamps in, folds out, no I/O. Bad input raises ``FoldError`` (a
``ValueError``: the CLI's exit status 2) naming the flag or the fold.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from config.sessions import IST, local_days
from models.dataset import purge_gap
from models.errors import ModelError

_DURATION = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)
_UNITS = {"D": "day", "W": "week", "M": "month", "Y": "year"}


class FoldError(ModelError):
    """Walk-forward windows that cannot be formed from the data or the flags."""


@dataclass(frozen=True)
class Duration:
    """A calendar length: ``count`` days, weeks, months or years."""

    count: int
    unit: str  # D | W | M | Y

    def after(self, day: date, times: int = 1) -> date:
        """``day`` moved forward by ``times`` of this duration (month ends clip: Jan 31 + 1M is
        Feb 28)."""
        n = self.count * times
        if self.unit == "D":
            return day + timedelta(days=n)
        if self.unit == "W":
            return day + timedelta(weeks=n)
        months = n if self.unit == "M" else 12 * n
        return (pd.Timestamp(day) + pd.DateOffset(months=months)).date()

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: str, flag: str = "duration") -> Duration:
    match = _DURATION.match(text or "")
    if match is None or int(match.group(1)) < 1:
        raise FoldError(
            f"{flag} {text!r}: a duration is a positive count and a unit — D (days), W (weeks), "
            "M (months) or Y (years), e.g. 2M"
        )
    return Duration(int(match.group(1)), match.group(2).upper())


@dataclass(frozen=True)
class Fold:
    """One train → test step. Days are IST calendar days, inclusive; ``*_ns`` are bar start
    timestamps (UTC epoch ns) of the first/last bar in each window."""

    index: int
    train_start: date
    train_end: date  # the calendar window's last day; the model's last bar is ``train_last_ns``
    test_start: date
    test_end: date
    train_first_ns: int
    train_last_ns: int  # ``purge_bars`` bars before the test window's first bar
    test_first_ns: int
    test_last_ns: int
    purge_bars: int
    train_bars: int  # bar times the model may train on (after the purge)
    test_bars: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("train_start", "train_end", "test_start", "test_end"):
            out[key] = str(out[key])
        out["train_last"] = _ist(self.train_last_ns)
        out["test_first"] = _ist(self.test_first_ns)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fold:
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        for key in ("train_start", "train_end", "test_start", "test_end"):
            fields[key] = date.fromisoformat(str(fields[key]))
        return cls(**fields)

    def describe(self) -> str:
        return (
            f"fold {self.index}: train {self.train_start} → {_ist(self.train_last_ns)} "
            f"({self.train_bars} bar times, purge {self.purge_bars}), "
            f"test {self.test_start} → {self.test_end} ({self.test_bars} bar times)"
        )


def _ist(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, tz="UTC").tz_convert(IST).strftime("%Y-%m-%d %H:%M")


def plan_folds(
    bar_ts_ns: np.ndarray,
    train: Duration,
    test: Duration,
    step: Duration | None = None,
    *,
    expanding: bool = False,
    horizon: int = 0,
    gap_bars: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[Fold]:
    """Folds over the bar times ``bar_ts_ns`` (any order, duplicates allowed: every symbol's
    bars), anchored at ``start`` (default: the first bar's day) and ending by ``end`` (default:
    the last bar's day). Only folds whose whole test window fits before ``end`` are planned.

    ``horizon``: the label horizon in bars (0 for a strategy without labels); the purge gap is
    ``purge_gap(horizon, gap_bars)`` bars, and a test window must hold more than ``horizon``
    bar times (else no bar in it has a label)."""
    times = np.unique(np.asarray(bar_ts_ns, dtype=np.int64))
    if len(times) == 0:
        raise FoldError("walk-forward: the data has no bars")
    days = local_days(times)
    first_day = _day(int(days[0])) if start is None else start
    last_day = _day(int(days[-1])) if end is None else end
    step = step or test
    gap = purge_gap(horizon, gap_bars) if horizon > 0 or gap_bars else 0
    folds: list[Fold] = []
    k = 0
    while True:
        if expanding:  # the training window grows; its start stays at the anchor
            train_start, test_start = first_day, step.after(train.after(first_day), k)
        else:
            train_start = step.after(first_day, k)
            test_start = train.after(train_start)
        test_stop = test.after(test_start)  # exclusive
        if test_stop - timedelta(days=1) > last_day:
            break
        folds.append(_fold(len(folds), times, days, train_start, test_start, test_stop, gap,
                           horizon))  # fmt: skip
        k += 1
    if not folds:
        need = test.after(train.after(first_day)) - timedelta(days=1)
        raise FoldError(
            f"walk-forward: no complete fold — the data runs {first_day} → {last_day}, and "
            f"--train {train} + --test {test} needs it to reach {need}"
        )
    return folds


def _day(local_day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=local_day)


def _day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _fold(
    index: int,
    times: np.ndarray,
    days: np.ndarray,
    train_start: date,
    test_start: date,
    test_stop: date,
    gap: int,
    horizon: int,
) -> Fold:
    lo = int(np.searchsorted(days, _day_number(train_start)))
    cut = int(np.searchsorted(days, _day_number(test_start)))
    hi = int(np.searchsorted(days, _day_number(test_stop)))
    train_end, test_end = test_start - timedelta(days=1), test_stop - timedelta(days=1)
    where = f"fold {index}"
    if hi == cut:
        raise FoldError(f"{where}: the test window {test_start} → {test_end} has no bars")
    if hi - cut <= horizon:
        raise FoldError(
            f"{where}: the test window {test_start} → {test_end} has {hi - cut} bar times, not "
            f"more than the label horizon of {horizon} bars: no bar in it can be labelled; "
            "use a longer --test"
        )
    if cut == lo:
        raise FoldError(f"{where}: the training window {train_start} → {train_end} has no bars")
    train_stop = cut - gap  # exclusive: the purge gap's bars are trained on by no one
    if train_stop <= lo:
        raise FoldError(
            f"{where}: the training window {train_start} → {train_end} has "
            f"{cut - lo} bar times, none left after the purge gap of {gap} bars"
        )
    return Fold(
        index=index,
        train_start=train_start,
        train_end=train_end,
        test_start=test_start,
        test_end=test_end,
        train_first_ns=int(times[lo]),
        train_last_ns=int(times[train_stop - 1]),
        test_first_ns=int(times[cut]),
        test_last_ns=int(times[hi - 1]),
        purge_bars=gap,
        train_bars=train_stop - lo,
        test_bars=hi - cut,
    )
