"""Paper daemon: the backtest's code path, crash safety, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import date
from pathlib import Path

from app.cli import main
from tests.support.daemon import run_rows as rows
from tests.support.daemon import stored as runs
from tests.support.daemon import trader, wait_until

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


MODES = ("backtest", "paper")


def test_paper_replay_at_max_speed_equals_the_backtest(tmp_path, nifty_path):
    db = tmp_path / "same.db"
    out = {mode: (tmp_path / f"{mode}.json", tmp_path / f"{mode}.html") for mode in MODES}
    backtest_args = ["backtest", "--data", str(nifty_path), *ARGS, "--no-progress"]
    paper_args = ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *ARGS]
    for mode, argv in zip(MODES, (backtest_args, paper_args), strict=True):
        json_out, report = out[mode]
        assert main([*argv, "--db", str(db), "--json", str(json_out), "--report", str(report)]) == 0
    backtest, paper = runs(db)
    assert (backtest.mode, paper.mode) == ("backtest", "paper")
    a, b = rows(db, backtest.run_id), rows(db, paper.run_id)
    assert len(a["fills"]) > 20
    assert a == b
    # --json and --report do what they say in every mode: one result shape, one report
    results = {mode: json.loads(out[mode][0].read_text()) for mode in MODES}
    assert results["paper"].keys() == results["backtest"].keys()
    assert results["paper"]["mode"] == "paper" and results["paper"]["status"] == "finished"
    assert results["paper"]["metrics"] == results["backtest"]["metrics"]
    assert results["paper"]["trades"] == results["backtest"]["trades"]
    for mode, run in (("backtest", backtest), ("paper", paper)):
        page = out[mode][1].read_text()
        assert f'<tr data-key="mode"><th>mode</th><td><b>{mode}</b></td></tr>' in page
        assert run.run_id in page


def test_model_paper_replay_equals_the_backtest(tmp_path, nifty_path):
    """The model strategy on real NSE bars: the backtest decides from predictions computed ahead
    in batches, the paper daemon bar by bar through the online predictor (as it will live) —
    and they store identical orders, fills, trades and equity."""
    from config.sessions import NSE
    from engine.data.loader import load_bars
    from models.feature_source import table_from_loaded_bars
    from tests.support.models import trading_model

    bars = load_bars([nifty_path], "5minute", end_date=date(2021, 2, 15), session=NSE)
    model = trading_model(table_from_loaded_bars(bars), tmp_path / "m.ckpt")
    args = [
        "--interval", "5minute", "--strategy", "model", "--model", str(model),
        "--param", "entry_threshold=0.55", "--param", "exit_threshold=0.45",
        "--param", "notional=200000", "--end-date", "2021-02-15", "--slippage-bps", "1",
    ]  # fmt: skip
    db = tmp_path / "model.db"
    assert (
        main(["backtest", "--data", str(nifty_path), *args, "--db", str(db), "--no-progress"]) == 0
    )
    paper = ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *args, "--db", str(db)]
    assert main(paper) == 0
    backtest, paper_run = runs(db)
    assert (backtest.mode, paper_run.mode) == ("backtest", "paper")
    configs = [json.loads(run.config_json) for run in (backtest, paper_run)]
    for config in configs:
        assert config["settings"].pop("mode") in ("backtest", "paper")
    assert configs[0] == configs[1] and configs[0]["model_hash"]  # same model, same key
    a, b = rows(db, backtest.run_id), rows(db, paper_run.run_id)
    assert len(a["fills"]) > 20 and len(a["trades"]) > 10
    assert a == b


def start_paper(db: Path | str, nifty: Path, *extra: str) -> subprocess.Popen[str]:
    return trader("paper", "--feed", f"replay:{nifty}", *ARGS, "--db", str(db), *extra)


def wait_for_bars(db: Path | str, at_least: int, proc: subprocess.Popen[str]) -> str:
    return str(wait_until(db, lambda run: (run.bars_processed or 0) >= at_least, proc).run_id)


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, nifty_path, db_url):
    """On SQLite and on a real PostgreSQL server (``db_url``): killed at a random moment and
    resumed, the run ends exactly as the uninterrupted run on SQLite — the same orders, fills
    and equity curve, whichever database held it."""
    whole = tmp_path / "whole.db"
    assert (
        main(
            ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *ARGS, "--db", str(whole)]
        )
        == 0
    )
    reference = rows(whole, runs(whole)[0].run_id)

    crashed = db_url
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


def test_sigterm_stops_cleanly_resume_by_id_alone_refuses_other_flags(tmp_path, nifty_path, capsys):
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
    err = capsys.readouterr().err
    assert "--slippage-bps 5.0 (the run has 1.0)" in err and "resume with the id alone" in err
    assert runs(db)[0].status == "stopped"  # a refused resume touches nothing
    # the id alone: the feed, data, dates, strategy and settings come from the run
    assert main(["paper", "--resume", run_id, "--db", str(db), "--speed", "max"]) == 0
    assert "paper session finished" in capsys.readouterr().out
    resumed = runs(db)[0]
    assert resumed.status == "finished" and resumed.bars_processed > run.bars_processed


def test_compare_and_report_on_stored_runs(tmp_path, nifty_path, capsys):
    import json as _json

    db = tmp_path / "cmp.db"
    assert (
        main(["backtest", "--data", str(nifty_path), *ARGS, "--db", str(db), "--no-progress"]) == 0
    )
    worse = [a if a != "1" else "10" for a in ARGS]  # paper with 10 bps slippage
    assert (
        main(["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *worse, "--db", str(db)])
        == 0
    )
    backtest, paper = runs(db)
    capsys.readouterr()
    assert main(["compare", paper.run_id, backtest.run_id, "--db", str(db), "--json"]) == 0
    summary = _json.loads(capsys.readouterr().out)
    assert summary["matched"] > 20 and summary["only_paper"] == summary["only_backtest"] == 0
    assert summary["avg_slippage_per_unit"] > 0  # paper paid 9 bps more each way
    assert summary["pnl_difference"] < 0
    assert summary["pnl_difference"] == summary["paper_pnl"] - summary["backtest_pnl"]

    out = tmp_path / "paper.html"
    assert main(["report", paper.run_id, "--db", str(db), "--out", str(out)]) == 0
    html = out.read_text()
    assert paper.run_id in html and "paper" in html and "<svg" in html


def test_compare_reports_unmatched_trades():
    from app.compare import compare_trades

    def trade(sym, entry, pnl, side="LONG", price=100.0):
        return {
            "symbol": sym,
            "side": side,
            "qty": 1,
            "entry_time": entry,
            "entry_price": price,
            "exit_time": entry,
            "exit_price": price + pnl,
            "pnl": pnl,
        }

    paper = [
        trade("A", "2024-01-02T09:20:00+05:30", 5.0, price=100.5),
        trade("B", "2024-01-02T10:00:00+05:30", -1.0),
    ]
    backtest = [
        trade("A", "2024-01-02T09:20:00+05:30", 6.0),
        trade("C", "2024-01-02T11:00:00+05:30", 2.0),
        trade("A", "2024-03-01T09:20:00+05:30", 9.0),
    ]  # outside the paper's days
    result = compare_trades(paper, backtest).as_dict()
    assert result["matched"] == 1 and result["only_paper"] == 1 and result["only_backtest"] == 1
    match = result["trades"]["matched"][0]
    assert match["entry_slippage"] == 0.5 and match["pnl_difference"] == -1.0
    assert result["backtest_pnl"] == 8.0
