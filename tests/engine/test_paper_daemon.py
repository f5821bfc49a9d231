"""Paper daemon: the backtest's code path, crash safety, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, select

from engine.cli import main
from engine.store.database import open_database
from engine.store.schema import EquityRow, FillRow, OrderRow, RunRow

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--interval",
    "15minute",
    "--strategy",
    "sma_cross",
    "--param",
    "fast=3",
    "--param",
    "slow=8",
    "--param",
    "qty=5",
    "--end-date",
    "2021-02-15",
    "--slippage-bps",
    "1",
]


def rows(db: Path, run_id: str) -> dict[str, list[tuple]]:
    engine = open_database(str(db))
    with engine.connect() as conn:
        orders = conn.execute(
            select(
                OrderRow.order_id,
                OrderRow.intent_id,
                OrderRow.ts,
                OrderRow.symbol,
                OrderRow.side,
                OrderRow.qty,
                OrderRow.status,
            )
            .where(OrderRow.run_id == run_id)
            .order_by(OrderRow.seq)
        ).all()
        fills = conn.execute(
            select(
                FillRow.order_id,
                FillRow.ts,
                FillRow.symbol,
                FillRow.side,
                FillRow.qty,
                FillRow.price,
                FillRow.costs,
            )
            .where(FillRow.run_id == run_id)
            .order_by(FillRow.seq)
        ).all()
        equity = conn.execute(
            select(EquityRow.ts, EquityRow.equity)
            .where(EquityRow.run_id == run_id)
            .order_by(EquityRow.ts)
        ).all()
    return {
        "orders": [tuple(r) for r in orders],
        "fills": [tuple(r) for r in fills],
        "equity": [tuple(r) for r in equity],
    }


def runs(db: Path) -> list:
    # a plain engine: readers must not race the daemon's schema creation
    with create_engine(f"sqlite:///{db}").connect() as conn:
        return conn.execute(select(RunRow).order_by(RunRow.created_at)).all()


def test_paper_replay_at_max_speed_equals_the_backtest(tmp_path, nifty_path):
    db = tmp_path / "same.db"
    assert (
        main(["backtest", "--data", str(nifty_path), *ARGS, "--db", str(db), "--no-progress"]) == 0
    )
    assert (
        main(["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *ARGS, "--db", str(db)])
        == 0
    )
    backtest, paper = runs(db)
    assert (backtest.mode, paper.mode) == ("backtest", "paper")
    a, b = rows(db, backtest.run_id), rows(db, paper.run_id)
    assert len(a["fills"]) > 20
    assert a == b


def start_paper(db: Path, nifty: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "paper",
            "--feed",
            f"replay:{nifty}",
            *ARGS,
            "--db",
            str(db),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_bars(db: Path, at_least: int, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if db.exists():
            try:
                found = runs(db)
            except Exception:  # tables not created yet
                continue
            if found and (found[0].bars_processed or 0) >= at_least:
                return found[0].run_id
        time.sleep(0.05)
    raise AssertionError("paper run made no progress")


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, nifty_path):
    whole = tmp_path / "whole.db"
    assert (
        main(
            ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *ARGS, "--db", str(whole)]
        )
        == 0
    )
    reference = rows(whole, runs(whole)[0].run_id)

    crashed = tmp_path / "crashed.db"
    proc = start_paper(crashed, nifty_path, "--speed", "40000x")  # 15-min bar ≈ 22 ms
    run_id = wait_for_bars(crashed, 120, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    interrupted = runs(crashed)[0]
    assert interrupted.status == "running"  # nobody got to write anything else
    assert 120 <= interrupted.bars_processed < len(reference["equity"])

    assert (
        main(
            [
                "paper",
                "--feed",
                f"replay:{nifty_path}",
                "--speed",
                "max",
                *ARGS,
                "--db",
                str(crashed),
                "--resume",
                run_id,
            ]
        )
        == 0
    )
    resumed = rows(crashed, run_id)
    for key in ("orders", "fills", "equity"):
        pairs = zip(resumed[key], reference[key], strict=False)
        diff = [(i, a, b) for i, (a, b) in enumerate(pairs) if a != b]
        assert not diff[:3], (key, diff[:3])
    assert resumed == reference
    assert runs(crashed)[0].status == "finished"


def test_sigterm_stops_cleanly_and_resume_refuses_other_settings(tmp_path, nifty_path, capsys):
    db = tmp_path / "term.db"
    proc = start_paper(db, nifty_path, "--speed", "40000x")
    run_id = wait_for_bars(db, 30, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out and run_id in out
    run = runs(db)[0]
    assert run.status == "stopped" and run.last_bar_ts
    code = main(
        [
            "paper",
            "--feed",
            f"replay:{nifty_path}",
            "--speed",
            "max",
            *ARGS[:-2],
            "--slippage-bps",
            "5",
            "--db",
            str(db),
            "--resume",
            run_id,
        ]
    )
    assert code == 2
    assert "different configuration" in capsys.readouterr().err
