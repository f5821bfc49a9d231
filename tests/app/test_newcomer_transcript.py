"""A newcomer's first session, as README.md "A first session" lists it, run in order in an empty
working directory: each command succeeds, or refuses with the documented message, and nothing
but the reports asked for lands anywhere but the one database in ``$TRADER_HOME``.

The commands are the README's, on less data (the synthetic demo with ``sma_cross``, two weeks
of NIFTY 50): the steps and their messages are what is held, and each command is checked to be
in the README as written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from tests.support.daemon import stored
from tests.support.paths import NIFTY, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SAME = [
    "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--interval",
    "15minute", "--end-date", "2021-01-15", "--no-progress",
]  # fmt: skip


def documented(command: str) -> None:
    """The step is in the README's first session as the newcomer reads it."""
    block = README.split("## A first session", 1)[1].split("## Where things live", 1)[0]
    flat = " ".join(block.replace("\\\n", " ").split())
    assert command in flat, f"README's first session lacks {command!r}"


def printed_run_id(text: str) -> str:
    found = re.search(r"\(trader runs show (\w+)\)", text)
    assert found is not None, text
    return found.group(1)


def test_a_newcomers_first_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRADER_HOME", str(home))
    for name in ("KITE_API_KEY", "KITE_API_SECRET", "KITE_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KITE_SECRETS_FILE", str(tmp_path / "no-secrets.env"))
    db = home / "trader.db"

    documented("trader demo")
    assert main(["demo", "--strategy", "sma_cross", "--days", "4", "--symbols", "2"]) == 0
    demo_id = printed_run_id(capsys.readouterr().out)

    documented("trader runs show RUN_ID")
    assert main(["runs", "show", demo_id]) == 0  # exactly as printed
    assert f"run {demo_id}" in capsys.readouterr().out

    documented("trader backtest --data ../shared/data/nse/NIFTY50_1min_2021.parquet")
    documented("--report backtest.html")
    assert main(["backtest", "--data", str(NIFTY), *SAME, "--report", "backtest.html"]) == 0
    backtest_id = printed_run_id(capsys.readouterr().out)

    documented("trader paper --feed replay:../shared/data/nse/NIFTY50_1min_2021.parquet")
    paper = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "paper", "--feed", f"replay:{NIFTY}", *SAME,
         "--speed", "40000x"],
        cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    paper_id = _wait_for_paper_bars(db, paper, at_least=20)
    paper.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = paper.communicate(timeout=60)
    assert paper.returncode == 0, err
    documented("paper session stopped (resume: trader paper --resume RUN_ID)")
    assert f"paper session stopped (resume: trader paper --resume {paper_id})" in out
    stopped = next(r for r in stored(db) if r.run_id == paper_id)
    assert stopped.status == "stopped"
    assert main(["runs", "show", paper_id]) == 0
    shown = capsys.readouterr().out
    assert f"resume: trader paper --resume {paper_id}\n" in shown
    assert f"started with: --feed replay:{NIFTY} " in shown and "--speed 40000x" in shown

    documented("trader paper --resume RUN_ID ")
    assert main(["paper", "--resume", paper_id, "--speed", "max"]) == 0  # the id (and pace)
    assert "paper session finished" in capsys.readouterr().out

    documented("trader report RUN_ID --out paper.html")
    assert main(["report", paper_id, "--out", "paper.html"]) == 0
    assert paper_id in (work / "paper.html").read_text(encoding="utf-8")

    documented("trader compare PAPER_RUN BACKTEST_RUN")
    assert main(["compare", paper_id, backtest_id]) == 0
    compared = capsys.readouterr().out
    matched = int(re.search(r"matched\s+([\d,]+)", compared).group(1))  # type: ignore[union-attr]
    assert matched > 0 and re.search(r"only paper\s+0\b", compared)
    assert re.search(r"only backtest\s+0\b", compared)

    documented("trader promote --to live --backtest BACKTEST_RUN --paper PAPER_RUN")
    documented('"promotion #1 to live: REFUSED"')
    code = main(["promote", "--to", "live", "--backtest", backtest_id, "--paper", paper_id])
    assert code == 2 and "promotion #1 to live: REFUSED" in capsys.readouterr().out

    documented("trader live --symbols INFY --i-understand-this-is-live")
    documented('"error: no approved promotion to live')
    assert main(["live", "--symbols", "INFY", "--i-understand-this-is-live"]) == 2
    assert "error: no approved promotion to live" in capsys.readouterr().err

    # nothing stray: the reports asked for in the working directory, one database in the home
    assert sorted(p.name for p in work.iterdir()) == ["backtest.html", "paper.html"]
    databases = [p for p in tmp_path.rglob("*") if p.suffix in {".db", ".sqlite"}]
    assert databases == [db]


def _wait_for_paper_bars(db: Path, proc: subprocess.Popen[str], at_least: int) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"paper exited {proc.returncode} early:\n{out}\n{err}")
        try:
            runs = [r for r in stored(db) if r.mode == "paper"]
        except Exception:  # tables not there yet
            runs = []
        if runs and (runs[0].bars_processed or 0) >= at_least:
            return str(runs[0].run_id)
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the paper run never got going")
