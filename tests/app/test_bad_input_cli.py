"""Bad input through the commands (issue 10, items 5–8): what used to exit 0 with other P&L, or
die mid-run with an internal error, is now refused with a message or dropped and counted — and
nothing already stored is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from app.cli import main
from engine.store.database import open_database
from engine.store.schema import RunRow
from tests.support.paths import ROOT

SMA = ["--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=5", "--param", "qty=100"]
BACKTEST = [*SMA, "--interval", "1minute", "--no-progress"]


def trend(n_down: int = 10, n_up: int = 100) -> list[float]:
    """Down, then up: sma_cross(2, 5) buys early in the rise and holds through it."""
    return [100 - 0.1 * i for i in range(n_down)] + [99 + 0.1 * i for i in range(n_up)]


def bars_csv(
    path: Path,
    closes: list[float],
    *,
    day: str = "2024-01-02",
    stamp: str = "%Y-%m-%d %H:%M",
    bad: dict[int, tuple[str, ...]] | None = None,
) -> Path:
    """1-minute bars from 09:15 (open = previous close); ``bad`` replaces a row's prices."""
    lines, prev = ["timestamp,open,high,low,close,volume"], closes[0]
    for i, c in enumerate(closes):
        t = pd.Timestamp(f"{day} 09:15") + pd.Timedelta(minutes=i)
        prices = (f"{prev:.2f}", f"{max(prev, c):.2f}", f"{min(prev, c):.2f}", f"{c:.2f}", "10")
        lines.append(",".join((t.strftime(stamp), *(bad or {}).get(i, prices))))
        prev = c
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(db: Path) -> list[tuple[str, str]]:
    with open_database(str(db)).connect() as conn:
        return [tuple(r) for r in conn.execute(select(RunRow.run_id, RunRow.status)).all()]


def result_of(tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "result.json"
    assert main([*argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


# ---- 5. timestamps -----------------------------------------------------------------------------


def test_day_first_data_is_refused_then_read_as_declared(tmp_path, capsys):
    data = bars_csv(tmp_path / "INFY.csv", trend(), day="2021-01-04", stamp="%d/%m/%Y %H:%M")
    assert main(["backtest", "--data", str(data), *BACKTEST, "--no-db"]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "row 1" in err and "'timestamp'" in err
    assert "'04/01/2021 09:15'" in err and "--date-format" in err

    result = result_of(tmp_path, "backtest", "--data", str(data), *BACKTEST, "--no-db",
                       "--date-format", "dayfirst")  # fmt: skip
    assert result["trades"] and all(
        t["entry_time"].startswith("2021-01-04") for t in result["trades"]
    )


def test_paper_replay_takes_the_same_options(tmp_path):
    data = bars_csv(tmp_path / "INFY.csv", trend(), day="2021-01-04", stamp="%d/%m/%Y %H:%M")
    db = tmp_path / "paper.db"
    paper = ["paper", "--feed", f"replay:{data}", "--speed", "max", *BACKTEST, "--db", str(db)]
    assert main(paper) == 2 and stored(db) == []
    assert main([*paper, "--date-format", "%d/%m/%Y %H:%M"]) == 0
    with open_database(str(db)).connect() as conn:
        run = conn.execute(select(RunRow)).one()
    assert run.status == "finished"
    assert pd.Timestamp(run.last_bar_ts, tz="UTC").tz_convert(
        "Asia/Kolkata"
    ).date().isoformat() == ("2021-01-04")
    assert json.loads(run.config_json)["settings"]["data"]["date_format"] == "%d/%m/%Y %H:%M"


def test_microsecond_epochs_are_not_read_as_nanoseconds(tmp_path):
    start = pd.Timestamp("2024-01-02 09:15", tz="Asia/Kolkata").value // 1000
    closes = trend()
    frame = pd.DataFrame(
        {
            "ts": [start + i * 60_000_000 for i in range(len(closes))],
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
        }
    )
    data = tmp_path / "INFY.parquet"
    frame.to_parquet(data)
    result = result_of(tmp_path, "backtest", "--data", str(data), *SMA, "--no-progress", "--no-db")
    assert result["bars_processed"] == 22  # 110 minutes in 5-minute bars, not 1970's sub-second
    assert all(t["entry_time"].startswith("2024-01-02") for t in result["trades"])
    argv = ["backtest", "--data", str(data), *SMA, "--no-progress", "--no-db"]
    assert main([*argv, "--epoch-unit", "us"]) == 0
    assert main([*argv, "--epoch-unit", "ms"]) == 2  # 56,000 years from now: refused


def test_an_unknown_date_format_is_a_settings_error(tmp_path, capsys):
    data = bars_csv(tmp_path / "INFY.csv", trend())
    assert main(["backtest", "--data", str(data), "--date-format", "dd/mm", "--no-db"]) == 2
    assert "data.date_format" in capsys.readouterr().err


# ---- 6. non-finite prices ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["backtest", "paper"])
def test_a_row_of_inf_is_dropped_and_the_run_finishes(tmp_path, mode):
    data = bars_csv(tmp_path / "INFY.csv", trend(), bad={60: ("inf",) * 4 + ("10",)})
    db = tmp_path / "runs.db"
    source = ["--data", str(data)] if mode == "backtest" else ["--feed", f"replay:{data}"]
    speed = ["--speed", "max"] if mode == "paper" else []
    result = result_of(tmp_path, mode, *source, *speed, *BACKTEST, "--db", str(db))
    assert result["data_quality"]["dropped"] == {"non_finite_price": 1}
    assert [status for _, status in stored(db)] == ["finished"]
    assert result["trades"] and result["metrics"]["max_drawdown"] < 0.01


# ---- 7. bad prints -----------------------------------------------------------------------------


def spike_csv(path: Path) -> Path:
    closes = trend()
    x = f"{closes[60] * 1000:.2f}"
    return bars_csv(path, closes, bad={60: (x, x, x, x, "10")})


def test_a_bar_at_1000x_does_not_mark_the_equity(tmp_path):
    data = spike_csv(tmp_path / "INFY.csv")
    result = result_of(tmp_path, "backtest", "--data", str(data), *BACKTEST, "--no-db")
    assert result["data_quality"]["dropped"] == {"outlier_move": 1}
    assert result["trades"] and result["metrics"]["max_drawdown"] < 0.01  # not 93%


def test_refusing_a_bad_print_loses_nothing_stored(tmp_path, capsys):
    db = tmp_path / "runs.db"
    good = bars_csv(tmp_path / "GOOD.csv", trend())
    assert main(["backtest", "--data", str(good), *BACKTEST, "--db", str(db)]) == 0
    before = stored(db)
    data = spike_csv(tmp_path / "INFY.csv")
    argv = ["backtest", "--data", str(data), *BACKTEST, "--db", str(db), "--outliers", "refuse"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "row 61" in err and "INFY" in err and "max_bar_move_pct" in err
    assert stored(db) == before and [s for _, s in before] == ["finished"]
    # the limit is a flag too: loose enough, the spike is kept (and the drawdown is back)
    loose = ["backtest", "--data", str(data), *BACKTEST, "--no-db", "--max-bar-move-pct", "1e6"]
    assert result_of(tmp_path, *loose)["metrics"]["max_drawdown"] > 0.5


# ---- 8. a data directory with notes ------------------------------------------------------------


def test_a_readme_in_the_data_directory_is_skipped_and_said(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    bars_csv(folder / "INFY.csv", trend())
    (folder / "README.txt").write_text("1-minute bars, IST, from the vendor\n")
    assert main(["backtest", "--data", str(folder), *BACKTEST, "--no-db"]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "README.txt" in out and "not a bar table" in out


def test_bad_input_is_never_a_traceback(tmp_path):
    data = tmp_path / "MIX.csv"
    data.write_text(
        "ts,open,high,low,close\n2024-01-02 09:15,1,1,1,1\n2024-01-02T03:46:00+00:00,1,1,1,1\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "backtest", "--data", str(data), "--no-db"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(data) in proc.stderr and "column 'ts'" in proc.stderr and "zone" in proc.stderr
