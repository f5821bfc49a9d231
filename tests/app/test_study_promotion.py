"""`trader promote --study`: a walk-forward study is the backtest evidence, and the Sharpe,
drawdown and profitable-fold gates judge its stitched out-of-sample curve (thresholds from the
``promotion`` settings); a grid study or one without costs is refused, and paper runs must
trade the configuration the study tested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.cli import main
from engine.store import studies
from engine.store.database import open_database
from engine.store.schema import PromotionRow
from tests.support.paths import NIFTY, NSE_DIR

STUDY = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", "sma_cross",
         "--start-date", "2021-01-01", "--end-date", "2021-04-30", "--train", "2M", "--test",
         "1M", "--no-ray"]  # fmt: skip


def paper(db: Path, capsys: pytest.CaptureFixture[str], *params: str) -> str:
    out = db.with_suffix(f".paper{len(params)}.json")
    args = ["paper", "--feed", f"replay:{NIFTY}", "--speed", "max", "--strategy", "sma_cross",
            *params, "--start-date", "2021-06-01", "--end-date", "2021-06-02", "--db", str(db),
            "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    return str(json.loads(out.read_text())["run_id"])


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("promote")
    db = tmp / "p.db"
    assert main([*STUDY, "--out", str(tmp / "study"), "--db", str(db)]) == 0
    engine = open_database(str(db))
    (study,) = studies.list_studies(engine)
    return {"db": db, "study": studies.load_study(engine, study["study_id"])}


def promote(db: Path, study_id: str, *papers: str) -> int:
    paper_args = [a for p in papers for a in ("--paper", p)]
    return main(["promote", "--to", "live", "--study", study_id, *paper_args, "--db", str(db)])


def last_evidence(db: Path) -> dict[str, Any]:
    with open_database(str(db)).connect() as conn:
        row = conn.execute(select(PromotionRow).order_by(PromotionRow.id.desc())).first()
    assert row is not None
    return dict(json.loads(row.evidence_json))


def test_the_gates_judge_the_stitched_out_of_sample_curve(
    evidence: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, study = evidence["db"], evidence["study"]
    stitched = study["results"]["0"]["metrics"]
    same = paper(db, capsys)
    other = paper(db, capsys, "--param", "fast=7")
    assert promote(db, study["study_id"], same, other) == 2
    out = capsys.readouterr().out
    assert "REFUSED" in out and f"walk-forward study {study['study_id']} Sharpe" in out
    assert (
        f"walk-forward study (stitched out-of-sample) Sharpe {stitched['sharpe']:.2f} is not > 1.5"
        in out
    )
    assert f"paper run {other} traded a different strategy configuration" in out
    assert f"paper run {same} traded a different" not in out  # the study's configuration
    recorded = last_evidence(db)["backtest"]
    assert recorded["kind"] == "walk-forward study"
    assert recorded["study_id"] == study["study_id"]
    assert recorded["curve"] == "stitched out-of-sample"
    assert recorded["sharpe"] == stitched["sharpe"]

    # the thresholds are the promotion settings: lenient curve gates leave the fold gate
    monkeypatch.setenv("TRADER_PROMOTION__MIN_BACKTEST_SHARPE", "-1000")
    monkeypatch.setenv("TRADER_PROMOTION__MAX_BACKTEST_DRAWDOWN", "1")
    monkeypatch.setenv("TRADER_PROMOTION__MIN_PROFITABLE_FOLDS", "1")
    assert promote(db, study["study_id"], same) == 2
    out = capsys.readouterr().out
    profitable = sum(f["metrics"]["backtest"]["total_return"] > 0 for f in study["folds"])
    assert profitable < 2
    assert f"{profitable} of 2 folds profitable, fewer than 100%" in out
    assert "Sharpe" not in out.split("REFUSED", 1)[1]
    monkeypatch.setenv("TRADER_PROMOTION__MIN_PROFITABLE_FOLDS", "0")
    assert promote(db, study["study_id"], same) == 2
    refusals = capsys.readouterr().out.split("REFUSED", 1)[1]
    assert "study" not in refusals and "paper trading on live prices covers" in refusals


def test_a_grid_study_or_one_without_costs_is_refused(
    evidence: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db, study = evidence["db"], evidence["study"]
    engine = open_database(str(db))
    spec = json.loads(json.dumps(study["spec"]))
    spec["settings"]["costs"]["model"] = "none"
    studies.start_study(
        engine, "wf-copy", strategy="sma_cross", spec=spec, folds=study["planned_folds"],
        out_dir=study["out_dir"], code_version="x", data_fingerprint=study["data_fingerprint"],
    )  # fmt: skip
    results = {"0": study["results"]["0"], "1": study["results"]["0"]}
    studies.finish_study(engine, "wf-copy", "finished", results=results)
    assert promote(db, "wf-copy") == 2
    out = capsys.readouterr().out
    assert "study wf-copy has 2 parameter points" in out
    assert "study wf-copy was run with --costs none" in out
    assert main(["promote", "--to", "live", "--study", "wf-none", "--db", str(db)]) == 2
    assert "no study 'wf-none'" in capsys.readouterr().err
