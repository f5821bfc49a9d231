"""Data in: formats, time zones, session filter, resampling and every bad-input outcome."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.sessions import NSE
from engine.data.loader import load_bars
from engine.data.quality import DataError

HEADER = "timestamp,open,high,low,close,volume\n"


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def rows(*lines: str) -> str:
    return HEADER + "\n".join(lines) + "\n"


GOOD = [
    "2024-01-02 09:15:00,100,101,99,100.5,10",
    "2024-01-02 09:16:00,100.5,102,100,101,20",
    "2024-01-02 09:17:00,101,101.5,100.5,101.2,30",
]


def test_real_nse_files_load_cleanly(nifty_path):
    bars = load_bars([nifty_path.parent], "5minute", session=NSE)
    frame = bars.frame
    assert set(frame["symbol"]) == {"NIFTY 50", "NIFTY BANK"}
    minutes = frame["ts"].dt.hour * 60 + frame["ts"].dt.minute
    assert minutes.min() >= 9 * 60 + 15 and minutes.max() < 15 * 60 + 30
    assert (minutes - (9 * 60 + 15)).mod(5).eq(0).all()
    assert str(frame["ts"].dt.tz) == "Asia/Kolkata"
    assert bars.quality.dropped["outside_session"] > 0  # pre-open 09:08 and after-hours rows
    assert (frame["volume"] == 0).all()


def test_resample_matches_manual_aggregation(nifty_path):
    one = load_bars([nifty_path], "1minute", session=NSE).frame
    five = load_bars([nifty_path], "5minute", session=NSE).frame
    day = one[one["ts"].dt.date == one["ts"].dt.date.iloc[1000]]
    bucket = day[(day["ts"].dt.hour == 11) & (day["ts"].dt.minute.between(20, 24))]
    row = five[five["ts"] == bucket["ts"].iloc[0].replace(minute=20)].iloc[0]
    assert row["open"] == bucket["open"].iloc[0]
    assert row["high"] == bucket["high"].max()
    assert row["low"] == bucket["low"].min()
    assert row["close"] == bucket["close"].iloc[-1]


def test_first_bucket_is_session_aligned_even_if_0915_is_missing(tmp_path):
    path = write(tmp_path, "X.csv", rows(*GOOD[1:]))  # starts 09:16
    frame = load_bars([path], "5minute", session=NSE).frame
    assert frame["ts"].dt.strftime("%H:%M").tolist() == ["09:15"]
    assert frame["open"].iloc[0] == 100.5 and frame["volume"].iloc[0] == 50


def test_naive_timestamps_are_ist_and_aware_ones_are_converted(tmp_path):
    naive = write(tmp_path, "A.csv", rows(*GOOD))
    aware = write(
        tmp_path,
        "B.csv",
        rows("2024-01-02T03:45:00+00:00,100,101,99,100.5,10"),  # 09:15 IST
    )
    a = load_bars([naive], "1minute", session=NSE).frame
    b = load_bars([aware], "1minute", session=NSE).frame
    assert a["ts"].iloc[0] == pd.Timestamp("2024-01-02 09:15", tz="Asia/Kolkata")
    assert b["ts"].iloc[0] == pd.Timestamp("2024-01-02 09:15", tz="Asia/Kolkata")
    assert a["symbol"].iloc[0] == "A"  # one file per symbol: the name is the symbol


def test_long_format_parquet_with_symbol_column(tmp_path):
    frame = pd.DataFrame(
        {
            "datetime": pd.to_datetime(["2024-01-02 09:15", "2024-01-02 09:15"]),
            "symbol": ["INFY", "TCS"],
            "open": [10.0, 20.0],
            "high": [11.0, 21.0],
            "low": [9.0, 19.0],
            "close": [10.5, 20.5],
            "volume": [1, 2],
        }
    )
    path = tmp_path / "long.parquet"
    frame.to_parquet(path)
    out = load_bars([path], "1minute", session=NSE).frame
    assert out["symbol"].tolist() == ["INFY", "TCS"]


@pytest.mark.parametrize(
    "body,needle",
    [
        ("ts,open,high,close\n2024-01-02 09:15,1,2,1\n", "missing column(s) low"),
        ("when,open,high,low,close\n2024-01-02 09:15,1,2,1,1\n", "no time column"),
        (rows(GOOD[0], "2024-01-02 09:16:00,abc,102,100,101,20"), "row 2, column 'open'"),
        (rows(GOOD[0], "not-a-time,100,102,100,101,20"), "row 2, column 'timestamp'"),
        (rows(GOOD[0], "2024-01-02 09:16:00,100,102,100,101,lots"), "row 2, column 'volume'"),
    ],
)
def test_broken_files_are_refused_naming_file_row_column(tmp_path, body, needle):
    path = write(tmp_path, "BAD.csv", body)
    with pytest.raises(DataError) as info:
        load_bars([path], "1minute", session=NSE)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_bad_rows_are_dropped_and_counted(tmp_path):
    path = write(
        tmp_path,
        "Q.csv",
        rows(
            GOOD[0],
            "2024-01-02 09:16:00,,102,100,101,20",  # missing price
            "2024-01-02 09:17:00,100,99,101,100,20",  # high < low
            "2024-01-02 09:18:00,-1,102,100,101,20",  # non-positive
            "2024-01-02 09:19:00,100,102,100,101,-5",  # negative volume
            "2024-01-02 09:15:00,100,101,99,100.9,10",  # duplicate of row 1
            "2024-01-02 09:08:00,100,101,99,100.5,10",  # pre-open
            "2024-01-02 15:30:00,100,101,99,100.5,10",  # after close
            "2024-01-02 09:20:00,100,101,99,100.5,",  # NaN volume → 0, noted
        ),
    )
    bars = load_bars([path], "1minute", session=NSE)
    q = bars.quality
    assert dict(q.dropped) == {
        "missing_price": 1,
        "inconsistent_ohlc": 1,
        "non_positive_price": 1,
        "negative_volume": 1,
        "duplicate_ts": 1,
        "outside_session": 2,
    }
    assert q.notes["missing_volume"] == 1
    assert bars.frame["close"].tolist() == [100.5, 100.5]  # first of the duplicates kept
    text = str(q)
    assert "missing_price" in text and "outside_session" in text


def test_unsorted_rows_are_sorted(tmp_path):
    path = write(tmp_path, "U.csv", rows(GOOD[2], GOOD[0], GOOD[1]))
    bars = load_bars([path], "1minute", session=NSE)
    assert bars.frame["ts"].is_monotonic_increasing
    assert bars.quality.notes["unsorted_rows"] == 1


def test_date_range_and_interval_errors(tmp_path):
    path = write(tmp_path, "D.csv", rows(*GOOD))
    with pytest.raises(ValueError, match="interval 'fortnight'"):
        load_bars([path], "fortnight", session=NSE)
    with pytest.raises(DataError, match="no such file"):
        load_bars([tmp_path / "nope.csv"], "1minute", session=NSE)
    from datetime import date

    with pytest.raises(DataError, match="no bars left"):
        load_bars([path], "1minute", start_date=date(2025, 1, 1), session=NSE)


def test_fingerprint_changes_with_content_and_options(tmp_path):
    path = write(tmp_path, "F.csv", rows(*GOOD))
    a = load_bars([path], "1minute", session=NSE).fingerprint
    assert a == load_bars([path], "1minute", session=NSE).fingerprint
    assert a != load_bars([path], "5minute", session=NSE).fingerprint
    path.write_text(rows(*GOOD[:2]))
    assert a != load_bars([path], "1minute", session=NSE).fingerprint
    assert np.isfinite(load_bars([path], "1minute", session=NSE).frame["close"]).all()
