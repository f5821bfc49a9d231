"""``--symbols A,B`` picks the universe from the files given (real NSE bars); a name the files
do not hold is refused naming it and the ones they do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from tests.support.paths import NSE_DIR

RUN = [
    "backtest", "--data", str(NSE_DIR), "--interval", "15minute", "--strategy", "sma_cross",
    "--param", "fast=5", "--param", "slow=20", "--end-date", "2021-01-31", "--no-db",
    "--no-progress",
]  # fmt: skip


def test_symbols_choose_the_universe_from_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every, one = tmp_path / "every.json", tmp_path / "one.json"
    assert main([*RUN, "--json", str(every)]) == 0
    assert main([*RUN, "--symbols", "NIFTY BANK", "--json", str(one)]) == 0
    both, bank = json.loads(every.read_text()), json.loads(one.read_text())
    assert {t["symbol"] for t in both["trades"]} == {"NIFTY 50", "NIFTY BANK"}
    assert {t["symbol"] for t in bank["trades"]} == {"NIFTY BANK"}
    assert bank["trades"] == [t for t in both["trades"] if t["symbol"] == "NIFTY BANK"]
    assert bank["data_fingerprint"] != both["data_fingerprint"]  # another universe, another run
    capsys.readouterr()

    assert main([*RUN, "--symbols", "NIFTY BANK,INFY"]) == 2
    err = capsys.readouterr().err
    assert "symbol(s) INFY not in" in err and "available: NIFTY 50, NIFTY BANK" in err
