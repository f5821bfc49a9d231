"""Promotion gates on real stored runs, and live mode refusing without them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app.cli import main
from config.settings import PromotionSettings, load_settings
from engine.pipeline import run_config
from risk.promotion import (
    LiveRefused,
    backtest_run_evidence,
    check_live_allowed,
    evaluate,
    record,
    strategy_key,
)
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support import PARAMS, stored_runs
from tests.support.kite_paper import kite_paper_run


async def test_promotion_approved_on_good_evidence_and_recorded(tmp_path):
    engine, bt, _replay = await stored_runs(tmp_path / "p.db", paper_days=1)
    paper = await kite_paper_run(engine, sessions=3)
    result = evaluate(engine, bt, [paper], PromotionSettings(min_paper_days=3))
    assert result.approved, result.reasons
    # the sessions traded by the wall clock, not bars and not bar time
    assert result.evidence["paper"]["trading_days"] == 3
    assert result.evidence["paper"]["sessions"] == ["2024-06-03", "2024-06-04", "2024-06-05"]
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
    # the seed's 20 sessions: three are not enough, and only the count is wrong
    short = evaluate(engine, bt, [paper], PromotionSettings())
    assert short.reasons == [
        "paper trading on live prices covers 3 trading sessions (by the wall clock), fewer than 20"
    ]


async def test_a_replay_is_research_not_paper_evidence(tmp_path, capsys):
    """22 days of bars replayed at full speed count for no session: refused, saying why."""
    engine, bt, paper = await stored_runs(tmp_path / "r.db", paper_days=22)
    result = evaluate(engine, bt, [paper], PromotionSettings())
    assert not result.approved
    assert result.evidence["paper"]["trading_days"] == 0
    assert any(
        f"paper run {paper} replayed stored bars (feed replay)" in r
        and "research, not paper evidence" in r
        for r in result.reasons
    )
    assert any("0 trading sessions" in r for r in result.reasons)
    strict = evaluate(
        engine, bt, [paper], PromotionSettings(min_backtest_sharpe=1e9, min_paper_days=1)
    )
    assert [r for r in strict.reasons if "Sharpe" in r]
    code = main(
        ["promote", "--to", "live", "--backtest", bt, "--paper", paper, "--db",
         str(tmp_path / "r.db")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 2 and "REFUSED" in out and "research, not paper evidence" in out
    config = run_config(load_settings("live"), SmaCross(PARAMS))
    with pytest.raises(LiveRefused, match="no approved promotion"):
        check_live_allowed(engine, config, 10_000, PromotionSettings(), confirmed=True)


async def test_evidence_without_the_live_costs_or_slippage_is_refused_naming_the_setting(
    tmp_path,
):
    engine, bt, _ = await stored_runs(tmp_path / "c.db", paper_days=1)
    free = await kite_paper_run(
        engine, 3, settings=load_settings("paper", interval="1minute", costs={"model": "none"})
    )
    rules = PromotionSettings(min_paper_days=3)
    result = evaluate(engine, bt, [free], rules)
    assert result.reasons == [
        f"paper run {free} was run with --costs none (costs.model=none); live trading pays "
        "zerodha charges, so its P&L is overstated"
    ]
    cheap = await kite_paper_run(
        engine, 3,
        settings=load_settings("paper", interval="1minute", costs={"brokerage_pct": 0.01}),
    )  # fmt: skip
    assert evaluate(engine, bt, [cheap], rules).reasons == [
        f"paper run {cheap} was run with costs.brokerage_pct=0.01, less than the live "
        "configuration's 0.03"
    ]
    # charging more than live will is only conservative
    assert evaluate(engine, bt, [cheap], rules, live=load_settings("live", costs={
        "brokerage_pct": 0.01})).approved  # fmt: skip
    slipping = load_settings("live", execution={"slippage_bps": 2.0})
    result = evaluate(engine, bt, [free], rules, live=slipping)
    assert any(f"backtest {bt} was run with execution.slippage_bps=0" in r for r in result.reasons)
    assert any("less than the live configuration's 2" in r for r in result.reasons)


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


async def test_a_study_as_backtest_evidence_meets_the_same_gates_and_its_folds(tmp_path):
    """The shape a walk-forward study will hand ``evaluate``: Sharpe and drawdown of its
    stitched out-of-sample curve, and the share of profitable folds (``PromotionSettings``)."""
    engine, bt, _ = await stored_runs(tmp_path / "s.db", paper_days=1)
    paper = await kite_paper_run(engine, sessions=3)
    rules = PromotionSettings(min_paper_days=3)
    study = dataclasses.replace(
        backtest_run_evidence(engine, bt), kind="walk-forward study", ref="study-1",
        folds=(1, 4), record={"study_id": "study-1"},
    )  # fmt: skip
    result = evaluate(engine, study, [paper], rules)
    assert result.reasons == ["1 of 4 folds profitable, fewer than 50%"]
    assert result.evidence["backtest"] == {
        "kind": "walk-forward study",
        "ref": "study-1",
        "study_id": "study-1",
    }
    assert evaluate(engine, dataclasses.replace(study, folds=(3, 4)), [paper], rules).approved
    weak = dataclasses.replace(study, folds=(3, 4), sharpe=0.4)
    assert evaluate(engine, weak, [paper], rules).reasons == [
        "walk-forward study (stitched out-of-sample) Sharpe 0.40 is not > 1.5"
    ]
