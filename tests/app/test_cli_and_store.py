"""The ``trader`` commands end to end, on a real SQLite file, and their error behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import func, select

from app.cli import main
from engine.store.database import open_database
from engine.store.schema import EquityRow, FillRow, OrderRow, RunRow, TradeRow
from tests.support.paths import ROOT


def test_backtest_stores_the_run_and_runs_reads_it_back(tmp_path, nifty_path, capsys, db_url):
    """On SQLite and on a real PostgreSQL server (``db_url``)."""
    db = db_url
    out = tmp_path / "result.json"
    report = tmp_path / "report.html"
    code = main(
        [
            "backtest",
            "--data",
            str(nifty_path),
            "--interval",
            "15minute",
            "--strategy",
            "sma_cross",
            "--param",
            "fast=5",
            "--param",
            "slow=20",
            "--param",
            "qty=2",
            "--end-date",
            "2021-03-31",
            "--db",
            str(db),
            "--json",
            str(out),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert {
        "run_id",
        "metrics",
        "trades",
        "bars_processed",
        "data_quality",
        "elapsed_seconds",
    } <= set(result)
    trade = result["trades"][0]
    assert {
        "symbol",
        "side",
        "qty",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "pnl",
        "costs",
    } <= set(trade) and trade["qty"] == 2
    assert result["data_quality"]["dropped"]["outside_session"] > 0
    assert "data quality" in capsys.readouterr().out

    engine = open_database(str(db))
    with engine.connect() as conn:
        run = conn.execute(select(RunRow)).one()
        n_trades = conn.execute(select(func.count()).select_from(TradeRow)).scalar_one()
        n_fills = conn.execute(select(func.count()).select_from(FillRow)).scalar_one()
        n_orders = conn.execute(select(func.count()).select_from(OrderRow)).scalar_one()
        n_equity = conn.execute(select(func.count()).select_from(EquityRow)).scalar_one()
        modes = set(conn.execute(select(FillRow.mode)).scalars())
    assert run.run_id == result["run_id"] and run.status == "finished"
    assert json.loads(run.config_json)["params"] == {
        "fast": 5, "slow": 20, "qty": 2, "sizing": "qty", "notional": 100_000.0, "fraction": 0.1
    }  # fmt: skip
    assert run.data_fingerprint and run.code_version
    assert n_trades == len(result["trades"]) and n_fills >= 2 * n_trades - 1
    assert n_orders >= n_fills and n_equity == result["bars_processed"]
    assert modes == {"backtest"}

    assert main(["runs", "list", "--db", str(db)]) == 0
    assert result["run_id"] in capsys.readouterr().out
    assert main(["runs", "show", result["run_id"], "--db", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"]["trade_count"] == result["metrics"]["trade_count"]
    assert len(shown["trades"]) == len(result["trades"])
    html = report.read_text()
    assert "<svg" in html and result["run_id"] in html and "Monthly returns" in html


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "BROKEN.csv"
    bad.write_text("ts,open,high,low,close\n2024-01-02 09:15,1,2,1,1\n2024-01-02 09:16,x,2,1,1\n")
    proc = run_cli("backtest", "--data", str(bad), "--no-db")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "row 2" in proc.stderr and "'open'" in proc.stderr

    proc = run_cli("backtest", "--data", str(bad), "--param", "fast", "--no-db")
    assert proc.returncode == 2 and "name=value" in proc.stderr

    good = tmp_path / "G.csv"
    good.write_text("ts,open,high,low,close\n2024-01-02 09:15,1,2,1,1\n")
    proc = run_cli("backtest", "--data", str(good), "--param", "slow=3", "--no-db")
    assert proc.returncode == 2 and "slow=3" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("backtest", "--data", str(good), "--capital", "-5", "--no-db")
    assert proc.returncode == 2 and "capital" in proc.stderr


def test_failed_run_is_stored_as_failed_and_earlier_runs_survive(tmp_path, monkeypatch):
    db = tmp_path / "x.db"
    demo = ["demo", "--strategy", "sma_cross", "--days", "2", "--symbols", "2"]
    assert main([*demo, "--db", str(db), "--no-progress"]) == 0
    import strategies.sma_cross as sma

    def explode(*a, **k):
        raise RuntimeError("kernel blew up")

    monkeypatch.setattr(sma.SmaCross, "on_bars", explode)
    assert main([*demo, "--db", str(db), "--no-progress"]) == 1
    with open_database(str(db)).connect() as conn:
        rows = conn.execute(select(RunRow.status, RunRow.error)).all()
    statuses = sorted(r.status for r in rows)
    assert statuses == ["failed", "finished"]
    assert any("kernel blew up" in (r.error or "") for r in rows)


def test_database_from_an_older_version_gains_new_columns(tmp_path):
    import sqlite3

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR(32) PRIMARY KEY, mode VARCHAR(8) NOT NULL, "
        "strategy VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, created_at VARCHAR(40) "
        "NOT NULL, finished_at VARCHAR(40), config_json TEXT NOT NULL, code_version VARCHAR(64) "
        "NOT NULL, data_fingerprint VARCHAR(64) NOT NULL, spec_hash VARCHAR(64), model_hash "
        "VARCHAR(64), bars_processed BIGINT NOT NULL, last_bar_ts BIGINT, metrics_json TEXT, "
        "quality_json TEXT, error TEXT)"
    )
    con.execute(
        "INSERT INTO runs VALUES ('old1', 'backtest', 'sma_cross', 'finished', 'x', "
        "NULL, '{}', 'v0', 'fp', NULL, NULL, 10, NULL, NULL, NULL, NULL)"
    )
    con.commit()
    con.close()
    assert (
        main(
            [
                "demo",
                "--strategy",
                "sma_cross",
                "--days",
                "2",
                "--symbols",
                "1",
                "--db",
                str(db),
                "--no-progress",
            ]
        )
        == 0
    )
    with open_database(str(db)).connect() as conn:
        rows = conn.execute(select(RunRow.run_id, RunRow.cash).order_by(RunRow.created_at)).all()
        measured = conn.execute(select(RunRow.in_sample_fraction, RunRow.model_data_json)).all()
    assert measured == [(None, None), (None, None)]  # added in place; sma_cross trades no model
    cash = {r.run_id: r.cash for r in rows}
    assert len(cash) == 2 and cash.pop("old1") is None  # the old run is still there
    assert next(iter(cash.values())) is not None  # the new column is used


def test_demo_trains_a_model_and_backtests_it_out_of_sample(tmp_path, capsys, _trader_home):
    db, out = tmp_path / "demo.db", tmp_path / "demo.json"
    code = main(
        [
            "demo",
            "--days",
            "12",
            "--symbols",
            "2",
            "--epochs",
            "1",
            "--model-dir",
            str(tmp_path / "m"),
            "--db",
            str(db),
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "training a small model" in printed and "model calls" in printed
    result = json.loads(out.read_text())
    assert result["model_calls"]["scored"] > 0
    with open_database(str(db)).connect() as conn:
        run = conn.execute(select(RunRow)).one()
    config = json.loads(run.config_json)
    assert run.strategy == "model" and config["model_hash"]
    # one directory per training recipe under --model-dir: two trainings never mix checkpoints
    assert list((tmp_path / "m").glob("*/intraday-epoch=00-val_loss=*-val_accuracy=*.ckpt"))
    # the sessions it backtests on are after everything the model saw, and the run says so
    assert "model data: out-of-sample" in printed and "WARNING" not in printed
    assert result["in_sample_fraction"] == 0.0 == run.in_sample_fraction
    # what the model says on this period, so thresholds are chosen, not guessed
    probabilities = result["model_probabilities"]
    assert "model probabilities on this period" in printed
    for side in ("BUY", "SELL"):
        values = probabilities[side]
        assert len(values) == 7 and values == sorted(values) and 0 <= values[0] <= values[-1] <= 1
        assert f"max {values[-1]:.3f}" in printed
    assert probabilities["bars"] > 0 and probabilities["entry_threshold"] == 0.5
    # predictions cached by default where `trader paths` says
    assert list((_trader_home / "cache" / "predictions").glob("pred-*.npz"))
