"""Walk-forward fold planning: windows tile the period, the purge gap is the split's, and bad
flags or data that cannot form a fold are refused naming the flag or the fold."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.dataset import purge_gap
from models.folds import Duration, FoldError, parse_duration, plan_folds


def bar_times(first: str, last: str, skip_month: int | None = None) -> np.ndarray:
    """5-minute NSE bar starts (09:15 → 15:25 IST, 75 a day) on the weekdays first → last."""
    days = pd.bdate_range(first, last)
    if skip_month is not None:
        days = days[days.month != skip_month]
    starts = [
        pd.Timestamp(f"{d.date()} 09:15", tz="Asia/Kolkata") + pd.Timedelta(minutes=5 * i)
        for d in days
        for i in range(75)
    ]
    return np.array([t.value for t in starts], dtype=np.int64)


def ist_day(ts_ns: int) -> date:
    return pd.Timestamp(ts_ns, tz="UTC").tz_convert("Asia/Kolkata").date()


M2, M1 = Duration(2, "M"), Duration(1, "M")


def test_rolling_folds_tile_the_test_months_with_the_purge_gap_before_each() -> None:
    times = bar_times("2021-01-01", "2021-06-30")
    folds = plan_folds(times, M2, M1, horizon=6)
    assert [(f.train_start, f.test_start, f.test_end) for f in folds] == [
        (date(2021, 1, 1), date(2021, 3, 1), date(2021, 3, 31)),
        (date(2021, 2, 1), date(2021, 4, 1), date(2021, 4, 30)),
        (date(2021, 3, 1), date(2021, 5, 1), date(2021, 5, 31)),
        (date(2021, 4, 1), date(2021, 6, 1), date(2021, 6, 30)),
    ]
    unique = np.unique(times)
    for fold in folds:
        first_test = int(np.searchsorted(unique, fold.test_first_ns))
        last_train = int(np.searchsorted(unique, fold.train_last_ns))
        assert first_test - last_train - 1 == fold.purge_bars == purge_gap(6) == 6
        assert ist_day(fold.test_first_ns) >= fold.test_start
        assert ist_day(fold.test_last_ns) <= fold.test_end
        assert fold.train_first_ns >= pd.Timestamp(fold.train_start, tz="Asia/Kolkata").value
        inside = (unique >= fold.test_first_ns) & (unique <= fold.test_last_ns)
        assert fold.test_bars == inside.sum()
    # a wider purge asked for is honoured (the split's rule: max(horizon, gap_bars))
    wide = plan_folds(times, M2, M1, horizon=6, gap_bars=20)[0]
    assert wide.purge_bars == 20 and wide.train_last_ns < folds[0].train_last_ns


def test_expanding_folds_keep_their_start_and_a_step_moves_them() -> None:
    times = bar_times("2021-01-01", "2021-06-30")
    grown = plan_folds(times, M2, M1, expanding=True, horizon=6)
    assert {f.train_start for f in grown} == {date(2021, 1, 1)}
    assert [f.test_start.month for f in grown] == [3, 4, 5, 6]
    assert [f.train_bars for f in grown] == sorted(f.train_bars for f in grown)
    two_weeks = plan_folds(times, M2, Duration(2, "W"), step=Duration(2, "W"), horizon=6)
    assert two_weeks[1].test_start == date(2021, 3, 15) and len(two_weeks) == 8
    assert plan_folds(times, M2, M1, start=date(2021, 2, 1))[0].test_start == date(2021, 4, 1)


@pytest.mark.parametrize("text", ["2X", "0M", "M2", "", "2.5M", "-1M"])
def test_a_malformed_duration_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(FoldError, match=r"--train .*a duration is a positive count and a unit"):
        parse_duration(text, "--train")


def test_durations_parse_in_any_case() -> None:
    assert parse_duration("2m") == M2 and str(parse_duration(" 10d ")) == "10D"
    assert parse_duration("1Y").after(date(2021, 2, 28)) == date(2022, 2, 28)


def test_data_that_cannot_form_a_fold_is_refused_naming_what_is_missing() -> None:
    no_fold = r"no complete fold .* 2021-01-01 → 2021-02-26.* 2021-03-31"
    with pytest.raises(FoldError, match=no_fold):
        plan_folds(bar_times("2021-01-01", "2021-02-28"), M2, M1)
    no_test = r"fold 1: the test window 2021-04-01 → 2021-04-30 has no bars"
    with pytest.raises(FoldError, match=no_test):
        plan_folds(bar_times("2021-01-01", "2021-05-31", skip_month=4), M2, M1)
    with pytest.raises(FoldError, match=r"fold 0: the training window .* has no bars"):
        plan_folds(bar_times("2021-03-01", "2021-03-31"), M2, M1, start=date(2021, 1, 1))
    with pytest.raises(
        FoldError,
        match=r"fold 0: the test window .* has 75 bar times, not more "
        r"than the label horizon of 100 bars",
    ):
        plan_folds(bar_times("2021-01-01", "2021-03-31"), M2, Duration(1, "D"), horizon=100)
