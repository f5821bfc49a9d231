"""Position sizing beyond a fixed quantity (``strategies/sizing.py``): a rupee amount or a
fraction of equity per position, for ``sma_cross`` (here, through the CLI on real NSE bars)
and the model strategy (the same rule; its parameters are validated the same way)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from strategies.model_strategy import ModelStrategy, ModelStrategyParams
from strategies.sizing import shares

RUN = [
    "backtest", "--interval", "15minute", "--strategy", "sma_cross", "--param", "fast=5",
    "--param", "slow=20", "--end-date", "2021-02-28", "--no-db", "--no-progress",
]  # fmt: skip


def trades(tmp_path: Path, data: Path, *params: str) -> list[dict]:
    out = tmp_path / "r.json"
    extra = [arg for p in params for arg in ("--param", p)]
    assert main([*RUN, "--data", str(data), *extra, "--json", str(out)]) == 0
    return list(json.loads(out.read_text())["trades"])


def test_notional_and_fraction_size_each_entry_from_its_price(
    tmp_path: Path, nifty_path: Path
) -> None:
    fixed = trades(tmp_path, nifty_path, "qty=3")
    by_amount = trades(tmp_path, nifty_path, "sizing=notional", "notional=500000")
    by_equity = trades(tmp_path, nifty_path, "sizing=fraction", "fraction=0.25")
    assert {t["qty"] for t in fixed} == {3}
    assert len(by_amount) == len(fixed) == len(by_equity) > 5  # same signals, other sizes
    for t in by_amount:  # decided at the crossing bar's close, filled at the next open
        assert 500_000 - 2 * t["entry_price"] < t["qty"] * t["entry_price"] < 500_000 * 1.02
    assert len({t["qty"] for t in by_amount}) > 1  # the price moved, so did the size
    equity = 1_000_000.0
    for t in by_equity:  # long-only, one position at a time: equity is known between trades
        assert 0.25 * equity - 2 * t["entry_price"] < t["qty"] * t["entry_price"]
        assert t["qty"] * t["entry_price"] < 0.25 * equity * 1.02
        equity += t["pnl"]


@pytest.mark.parametrize(
    ("param", "named"),
    [("sizing=kelly", "sizing='kelly'"), ("fraction=1.5", "fraction=1.5"),
     ("notional=0", "notional=0")],
)  # fmt: skip
def test_bad_sizing_parameters_are_refused_by_name(
    tmp_path: Path, nifty_path: Path, param: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*RUN, "--data", str(nifty_path), "--param", param]) == 2
    assert named in capsys.readouterr().err


def test_the_rule_and_the_model_strategys_parameters() -> None:
    assert shares("qty", 7, 1.0, 0.1, 250.0, 1e6) == 7
    assert shares("notional", 1, 100_000.0, 0.1, 333.0, 1e6) == 300
    assert shares("fraction", 1, 1.0, 0.2, 400.0, 50_000.0) == 25
    assert shares("fraction", 1, 1.0, 0.2, float("nan"), 50_000.0) == 0
    ModelStrategyParams(sizing="fraction", fraction=0.5).validate()
    with pytest.raises(ValueError, match="fraction=0"):
        ModelStrategyParams(sizing="fraction", fraction=0.0).validate()


def test_the_model_strategy_sizes_by_fraction_of_equity_and_by_rupees() -> None:
    by_equity = ModelStrategy(ModelStrategyParams(sizing="fraction", fraction=0.2))
    by_amount = ModelStrategy(ModelStrategyParams(sizing="notional", notional=50_000.0))
    for strategy in (by_equity, by_amount):
        strategy._close[3] = 250.0  # the last close it saw for sid 3
    assert by_equity._size(3, 1_000_000.0) == 800 and by_equity._size(3, 500_000.0) == 400
    assert by_amount._size(3, 1_000_000.0) == 200 == by_amount._size(3, 10.0)
    assert by_equity._size(4, 1_000_000.0) == 0  # no price yet: no entry
