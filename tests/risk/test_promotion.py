"""Promotion gates on real stored runs, and live mode refusing without them."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from config.settings import PromotionSettings, load_settings
from engine.pipeline import run_config
from risk.promotion import LiveRefused, check_live_allowed, evaluate, record, strategy_key
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support import PARAMS, stored_runs


async def test_promotion_approved_on_good_evidence_and_recorded(tmp_path):
    engine, bt, paper = await stored_runs(tmp_path / "p.db", paper_days=22)
    result = evaluate(engine, bt, [paper], PromotionSettings())
    assert result.approved, result.reasons
    assert result.evidence["paper"]["trading_days"] == 22
    assert result.evidence["backtest"]["sharpe"] > 1.5
    record(engine, result)
    config = run_config(load_settings("live"), SmaCross(PARAMS))
    promo = check_live_allowed(engine, config, 50_000, PromotionSettings(), confirmed=True)
    assert json.loads(promo.evidence_json)["paper"]["pnl"] > 0
    with pytest.raises(LiveRefused, match="capital cap"):
        check_live_allowed(engine, config, 60_000, PromotionSettings(), confirmed=True)
    with pytest.raises(LiveRefused, match="i-understand-this-is-live"):
        check_live_allowed(engine, config, 10_000, PromotionSettings(), confirmed=False)
    other = run_config(load_settings("live"), SmaCross(SmaCrossParams(3, 6, 10)))
    with pytest.raises(LiveRefused, match="no approved promotion"):
        check_live_allowed(engine, other, 10_000, PromotionSettings(), confirmed=True)


async def test_promotion_refused_with_reasons_and_recorded(tmp_path, capsys):
    engine, bt, paper = await stored_runs(tmp_path / "r.db", paper_days=5)
    result = evaluate(engine, bt, [paper], PromotionSettings())
    assert not result.approved
    assert any("5 trading days, fewer than 20" in r for r in result.reasons)
    strict = evaluate(
        engine, bt, [paper], PromotionSettings(min_backtest_sharpe=1e9, min_paper_days=1)
    )
    assert [r for r in strict.reasons if "Sharpe" in r] and len(strict.reasons) == 1
    code = main(
        [
            "promote",
            "--to",
            "live",
            "--backtest",
            bt,
            "--paper",
            paper,
            "--db",
            str(tmp_path / "r.db"),
        ]
    )
    assert code == 2 and "REFUSED" in capsys.readouterr().out
    config = run_config(load_settings("live"), SmaCross(PARAMS))
    with pytest.raises(LiveRefused, match="no approved promotion"):
        check_live_allowed(engine, config, 10_000, PromotionSettings(), confirmed=True)


async def test_paper_of_another_configuration_does_not_count(tmp_path):
    engine, bt, paper = await stored_runs(tmp_path / "m.db", 22, SmaCrossParams(3, 6, 10))
    result = evaluate(engine, bt, [paper], PromotionSettings())
    assert not result.approved
    assert any("different strategy configuration" in r for r in result.reasons)


def test_strategy_key_ignores_capital_and_mode_but_not_params():
    a = run_config(load_settings("backtest"), SmaCross(PARAMS))
    b = run_config(load_settings("live", capital=10_000), SmaCross(PARAMS))
    c = run_config(load_settings("live"), SmaCross(SmaCrossParams(2, 7, 10)))
    assert strategy_key(a) == strategy_key(b) != strategy_key(c)
