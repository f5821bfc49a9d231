"""What a trader reads about a stored run (real NSE bars): numbers as people read them
(``app/readable.py``), slippage beside costs and measured, and the run's rows as CSV."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from app.cli import main

RUN = [
    "backtest", "--interval", "15minute", "--strategy", "sma_cross", "--param", "fast=5",
    "--param", "slow=20", "--param", "qty=3", "--end-date", "2021-02-28", "--no-progress",
]  # fmt: skip


def backtest(db: Path, data: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    out = db.parent / f"result{len(extra)}.json"
    assert main([*RUN, "--data", str(data), "--db", str(db), "--json", str(out), *extra]) == 0
    capsys.readouterr()
    return dict(json.loads(out.read_text()))


def test_slippage_is_measured_shown_beside_costs_and_exported(
    tmp_path: Path, nifty_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    plain = backtest(db, nifty_path, capsys, "--slippage-bps", "0")
    slipped = backtest(db, nifty_path, capsys, "--slippage-bps", "2", "--costs", "zerodha")
    m0, m2 = plain["metrics"], slipped["metrics"]
    assert m0["trade_count"] == m2["trade_count"] > 10  # same trades, other fill prices
    assert m0["total_slippage"] == 0 and m2["total_slippage"] > 0
    # every rupee the P&L lost is slippage or the charges on the worse prices
    assert m0["total_pnl"] - m2["total_pnl"] == pytest.approx(
        m2["total_slippage"] + m2["total_costs"] - m0["total_costs"], abs=1e-6
    )

    run_id = slipped["run_id"]
    assert main(["runs", "show", run_id, "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    sharpe = re.search(r"Sharpe \(daily\)\s+(\S+)", shown)
    assert sharpe is not None and sharpe.group(1) == f"{m2['sharpe']:,.2f}"
    assert re.search(r"total return\s+-?[\d,]+\.\d\d%", shown)
    assert re.search(r"win rate\s+[\d.]+%", shown)
    assert f"₹{m2['total_slippage']:,.2f} slippage (inside fill prices)" in shown
    assert f"₹{m2['total_costs']:,.2f} charges" in shown
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d IST", shown)  # trades in exchange time
    assert str(m2["sharpe"]) not in shown  # never the raw float

    assert main(["runs", "list", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert f"runs in sqlite:///{db}" in listed and "created (UTC)" in listed
    row = next(line for line in listed.splitlines() if line.startswith(run_id))
    assert re.search(r"\d\d:\d\d:\d\d UTC$", row) and f"{m2['sharpe']:,.2f}" in row

    trades_csv, fills_csv, equity_csv = (tmp_path / f"{k}.csv" for k in ("t", "f", "e"))
    assert main(["runs", "trades", run_id, "--db", str(db), "--csv", str(trades_csv)]) == 0
    assert main(["runs", "fills", run_id, "--db", str(db), "--csv", str(fills_csv)]) == 0
    assert main(["runs", "equity", run_id, "--db", str(db), "--csv", str(equity_csv)]) == 0
    trades = list(csv.DictReader(trades_csv.open()))
    fills = list(csv.DictReader(fills_csv.open()))
    equity = list(csv.DictReader(equity_csv.open()))
    assert len(trades) == m2["trade_count"]
    assert [float(t["pnl"]) for t in trades] == [t["pnl"] for t in slipped["trades"]]
    assert trades[0]["entry_time"].endswith("+05:30")
    assert sum(float(f["slippage"]) for f in fills) == pytest.approx(m2["total_slippage"])
    assert len(equity) == slipped["bars_processed"]
    assert float(equity[-1]["equity"]) == pytest.approx(
        slipped["metrics"]["total_pnl"] + 1_000_000.0
    )
