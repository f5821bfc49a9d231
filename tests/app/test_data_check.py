"""``trader data check``: what a run would read, through the loader's own validation — checked
against what ``load_bars`` gives on the same real NSE files, and on a file with bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from config.sessions import NSE
from engine.data.loader import load_bars
from tests.support.paths import NSE_DIR


def test_data_check_reports_what_a_run_reads_from_real_nse_bars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "check", str(NSE_DIR), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = {Path(f["path"]).name: f for f in report["files"]}
    assert set(files) == {"NIFTY50_1min_2021.parquet", "BANKNIFTY_1min_2021.parquet"}
    loaded = load_bars([NSE_DIR], "1minute", session=NSE)  # what a 1-minute run reads
    assert sum(f["bars_kept"] for f in files.values()) == len(loaded.frame)
    assert sum(f["rows_read"] for f in files.values()) == loaded.quality.rows_read
    assert (
        sum(f["dropped"]["outside_session"] for f in files.values())
        == (loaded.quality.dropped["outside_session"])
    )
    nifty = files["NIFTY50_1min_2021.parquet"]
    assert nifty["symbols"] == ["NIFTY 50"] and nifty["interval_minutes"] == 1
    assert nifty["first"].startswith("2021-01-01") and nifty["last"].startswith("2021-12-31")
    assert 240 < nifty["sessions"] < 255

    assert main(["data", "check", str(NSE_DIR)]) == 0  # the same, for people
    text = capsys.readouterr().out
    assert "symbols   NIFTY 50 (1)" in text and "interval  1 minute" in text
    assert "2 of 2 file(s) readable: 2 symbol(s)" in text and "IST →" in text


def test_data_check_names_dropped_repaired_and_refused_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "INFY.csv"
    good.write_text(
        "ts,open,high,low,close,volume\n"
        "2024-01-02 09:20,10,11,9,10,100\n"
        "2024-01-02 09:15,10,11,9,10,100\n"  # unsorted: sorted, noted
        "2024-01-02 09:25,10,9,11,10,100\n"  # high < low: dropped
        "2024-01-02 09:30,10,11,9,10,\n"  # no volume: treated as 0, noted
        "2024-01-02 08:00,10,11,9,10,100\n"  # before the open: dropped
    )
    bad = tmp_path / "TCS.csv"
    bad.write_text("ts,open,high,low,close\n2024-01-02 09:15,x,2,1,1\n")
    assert main(["data", "check", str(good), str(bad)]) == 2  # a refused file: bad input
    out = capsys.readouterr().out
    assert "symbols   INFY (1)" in out and "rows      5 read, 3 bars kept" in out
    assert "interval  5 minute" in out
    assert "dropped           1 inconsistent_ohlc" in out
    assert "dropped           1 outside_session" in out
    assert "repaired          1 unsorted_rows" in out and "missing_volume" in out
    assert f"refused: {bad}: row 1" in out and "1 refused" in out
    assert main(["data", "check", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
