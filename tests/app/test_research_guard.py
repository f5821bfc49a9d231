"""A model's evidence must be out-of-sample: on real NSE bars, a model trained on the first
months of 2021 is backtested (and paper-replayed) on those months and on later ones; an
imported seed states its training period, or has none. The run says which data the model saw,
stores ``in_sample_fraction``, and ``trader promote`` refuses evidence the model has seen."""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select, update

from app.cli import main
from app.overlap import measure_live
from config.sessions import NSE, epoch_ns
from engine.data.loader import load_bars
from engine.store.database import open_database
from engine.store.queries import load_run
from engine.store.schema import PromotionRow, RunRow
from models.checkpoint import load_bundle
from models.network import IntradayClassifier, ModelConfig
from models.provenance import MEASURED, STATED, stated, unknown
from tests.support.paths import NSE_DIR

SMALL_TRAINING = [
    "--epochs", "1", "--max-windows", "300", "--window", "20", "--hidden-size", "16",
    "--threads", "1", "--no-progress", "--device", "cpu",
]  # fmt: skip
INSIDE = ("2021-01-18", "2021-02-12")  # inside the training and validation periods
LATER = ("2021-06-01", "2021-06-30")  # months after everything the model saw


@pytest.fixture(scope="module")
def trained(nifty_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`trader train` on NIFTY 50, January to March 2021."""
    out = tmp_path_factory.mktemp("trained")
    args = ["train", "--data", str(nifty_path), "--start-date", "2021-01-01",
            "--end-date", "2021-03-31", "--out", str(out), *SMALL_TRAINING]  # fmt: skip
    assert main(args) == 0
    return out / "model.ckpt"


def backtest(
    capsys: pytest.CaptureFixture[str],
    model: Path,
    period: tuple[str, str],
    db: Path,
    data: Path,
    *extra: str,
) -> tuple[str, dict]:
    """`trader backtest` of the model strategy; (stdout, the JSON result)."""
    out = db.with_suffix(f".{period[0]}.json")
    args = ["backtest", "--data", str(data), "--strategy", "model", "--model", str(model),
            "--start-date", period[0], "--end-date", period[1], "--db", str(db),
            "--json", str(out), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def promote(capsys: pytest.CaptureFixture[str], db: Path, run_id: str, *extra: str) -> str:
    assert main(["promote", "--to", "live", "--backtest", run_id, "--db", str(db), *extra]) == 2
    return capsys.readouterr().out


def test_a_backtest_on_the_training_months_is_flagged_stored_and_refused(
    trained: Path, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    report = tmp_path / "run.html"
    out, result = backtest(capsys, trained, INSIDE, db, nifty_path, "--report", str(report))
    assert "WARNING: IN-SAMPLE — 100.0% of this run's symbol-bars" in out
    assert "NIFTY 50: 100.0% of its" in out and "measured: NIFTY 50, 5-minute bars" in out
    assert result["in_sample_fraction"] == 1.0
    assert result["model_data"]["provenance"] == MEASURED
    run_id = result["run_id"]
    stored = load_run(open_database(str(db)), run_id)
    assert stored["in_sample_fraction"] == 1.0
    assert stored["model_data"]["symbols"]["NIFTY 50"]["in_sample_fraction"] == 1.0
    assert 'id="in-sample">100.0%' in report.read_text() and 'class="warn"' in report.read_text()

    assert main(["runs", "show", run_id, "--db", str(db)]) == 0
    assert "WARNING: IN-SAMPLE — 100.0%" in capsys.readouterr().out
    stored_report = tmp_path / "stored.html"
    assert main(["report", run_id, "--out", str(stored_report), "--db", str(db)]) == 0
    assert 'id="in-sample">100.0%' in stored_report.read_text()
    capsys.readouterr()
    # the model's calls against realised labels: stored with the run, in both reports
    calls = result["model_calls"]
    assert stored["model_calls"] == calls and sum(map(sum, calls["confusion_matrix"])) > 100
    accuracy = f'id="model-calls">accuracy <b>{calls["accuracy"] * 100:.1f}%</b>'
    for page in (report.read_text(), stored_report.read_text()):
        assert accuracy in page and 'id="confusion"' in page
        realised_hold = calls["confusion_matrix"][1]
        assert "<th>realised HOLD</th>" + "".join(f"<td>{n:,}</td>" for n in realised_hold) in page

    refused = promote(capsys, db, run_id)
    assert "REFUSED" in refused
    assert f"run {run_id} overlaps the model's training or validation data: 100.0%" in refused
    assert "NIFTY 50 100.0% (2021-01-18 09:15 → 2021-02-12 15:25 IST)" in refused

    # the operator may accept it, with a reason that is recorded with the promotion
    waived = promote(capsys, db, run_id, "--allow-in-sample", "plumbing check, not evidence")
    assert "in-sample evidence ACCEPTED by" in waived and "plumbing check" in waived
    refusals = waived.split("REFUSED", 1)[1]
    assert "overlaps the model's training" not in refusals and "Sharpe" in refusals
    with open_database(str(db)).connect() as conn:
        last = conn.execute(select(PromotionRow).order_by(PromotionRow.id.desc())).first()
    assert last is not None
    override = json.loads(last.evidence_json)["in_sample_override"]
    assert override["reason"] == "plumbing check, not evidence"
    assert "overlaps the model's training" in override["waived"][0]
    assert main(["promote", "--to", "live", "--backtest", run_id, "--db", str(db),
                 "--allow-in-sample", "  "]) == 2  # fmt: skip
    assert "--allow-in-sample needs the operator's reason" in capsys.readouterr().err


def test_only_training_and_validation_bars_count_never_the_test_period(
    trained: Path, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole training range: warm-up and test-period bars are out-of-sample, the rest in."""
    _, result = backtest(capsys, trained, ("2021-01-01", "2021-03-31"), tmp_path / "r.db",
                         nifty_path)  # fmt: skip
    prov = load_bundle(trained).provenance
    assert prov.test is not None and prov.validation is not None
    bars = load_bars([nifty_path], "5minute", date(2021, 1, 1), date(2021, 3, 31), session=NSE)
    ts = epoch_ns(bars.frame["ts"])
    seen = np.zeros(len(ts), dtype=bool)
    for span in prov.seen_spans("NIFTY 50") or []:
        seen |= (ts >= span.first_ns) & (ts <= span.last_ns)
    assert 0.5 < result["in_sample_fraction"] < 0.95
    assert result["in_sample_fraction"] == pytest.approx(seen.mean(), abs=1e-12)
    # the last in-sample bar is the validation period's last: the test period's bars after it
    # (and the feature warm-up before training) are out-of-sample
    last_in = result["model_data"]["symbols"]["NIFTY 50"]["last_in_sample"]
    assert pd.Timestamp(last_in, tz="Asia/Kolkata").value == prov.validation.last_ns
    assert (ts > prov.validation.last_ns).sum() > 0.1 * len(ts)


def test_a_backtest_on_later_months_is_out_of_sample(
    trained: Path, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    out, result = backtest(capsys, trained, LATER, db, nifty_path)
    assert "WARNING" not in out
    assert "model data: out-of-sample — none of this run's" in out
    assert result["in_sample_fraction"] == 0.0
    assert load_run(open_database(str(db)), result["run_id"])["in_sample_fraction"] == 0.0
    refused = promote(capsys, db, result["run_id"])
    assert "overlaps the model's" not in refused and "provenance" not in refused


def test_symbols_the_model_never_saw_are_out_of_sample(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trained on NIFTY 50 only (the file lists it): NIFTY BANK's bars are out-of-sample."""
    _, result = backtest(capsys, trained, INSIDE, tmp_path / "r.db", NSE_DIR)
    symbols = result["model_data"]["symbols"]
    assert symbols["NIFTY 50"]["in_sample_fraction"] == 1.0
    assert symbols["NIFTY BANK"]["in_sample_fraction"] == 0.0
    total = symbols["NIFTY 50"]["bars"] + symbols["NIFTY BANK"]["bars"]
    assert result["in_sample_fraction"] == symbols["NIFTY 50"]["bars"] / total


def test_a_paper_replay_on_the_training_months_is_flagged_and_stored(
    trained: Path, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = tmp_path / "paper.db", tmp_path / "paper.json"
    args = ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", "--strategy", "model",
            "--model", str(trained), "--start-date", "2021-01-18", "--end-date", "2021-01-22",
            "--db", str(db), "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "WARNING: IN-SAMPLE — 100.0%" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["mode"] == "paper" and result["in_sample_fraction"] == 1.0
    assert load_run(open_database(str(db)), result["run_id"])["in_sample_fraction"] == 1.0


def seed_files(tmp: Path) -> tuple[Path, Path]:
    """What the seed's training left behind, shaped for the running 89 features: a checkpoint
    (plain tensors, the network under ``model.``) and a pickled StandardScaler."""
    torch.manual_seed(0)
    net = IntradayClassifier(
        ModelConfig(n_features=89, window=20, hidden_size=8, num_heads=2, head_hidden=(8,))
    )
    ckpt, pkl = tmp / "seed.ckpt", tmp / "scaler.pkl"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"num_heads": 2, "window": 20, "activation": "gelu"},
        },
        ckpt,
    )
    scaler = StandardScaler().fit(np.random.default_rng(0).normal(size=(500, 89)))
    pkl.write_bytes(pickle.dumps(scaler))
    return ckpt, pkl


def import_seed(tmp: Path, name: str, *period: str) -> Path:
    ckpt, pkl = seed_files(tmp)
    out = tmp / name
    args = ["model", "import", "--ckpt", str(ckpt), "--scaler", str(pkl), "--out", str(out),
            "--trust-pickle", *period]  # fmt: skip
    assert main(args) == 0
    return out


def test_an_import_records_the_stated_period_and_a_backtest_inside_it_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    period = ["--trained-from", "2021-01-01", "--trained-to", "2021-03-31"]
    model = import_seed(tmp_path, "stated.ckpt", *period)
    prov = load_bundle(model).provenance
    assert prov.basis == STATED and prov.symbols is None
    assert prov.train is not None and prov.train.describe().startswith("2021-01-01 00:00 →")
    capsys.readouterr()
    db = tmp_path / "runs.db"
    # no symbols stated: both indices count as seen over the stated period
    out, inside = backtest(capsys, model, ("2021-02-01", "2021-02-26"), db, NSE_DIR)
    assert "WARNING: IN-SAMPLE — 100.0%" in out and "(stated at import)" in out
    assert inside["in_sample_fraction"] == 1.0
    assert "overlaps the model's training" in promote(capsys, db, inside["run_id"])
    _, later = backtest(capsys, model, LATER, db, NSE_DIR)
    assert later["in_sample_fraction"] == 0.0
    # with --symbols, a symbol not listed is out-of-sample even inside the period
    listed = import_seed(tmp_path, "listed.ckpt", *period, "--symbols", "NIFTY 50")
    capsys.readouterr()
    _, some = backtest(capsys, listed, ("2021-02-01", "2021-02-26"), db, NSE_DIR)
    assert some["model_data"]["symbols"]["NIFTY BANK"]["in_sample_fraction"] == 0.0
    assert some["model_data"]["symbols"]["NIFTY 50"]["in_sample_fraction"] == 1.0


def test_an_import_without_a_period_has_unknown_provenance_everywhere(
    nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = import_seed(tmp_path, "unknown.ckpt")
    assert "data seen: provenance unknown" in capsys.readouterr().out
    assert main(["model", "info", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["basis"] == "unknown"
    db, report = tmp_path / "runs.db", tmp_path / "run.html"
    out, result = backtest(capsys, model, LATER, db, nifty_path, "--report", str(report))
    assert "WARNING: the data this model was trained on is UNKNOWN" in out
    assert 'id="in-sample">unknown' in report.read_text() and 'class="warn"' in report.read_text()
    assert result["in_sample_fraction"] is None
    assert result["model_data"]["provenance"] == "unknown"
    run = load_run(open_database(str(db)), result["run_id"])
    assert run["in_sample_fraction"] is None and run["model_data"]["provenance"] == "unknown"
    assert main(["runs", "show", result["run_id"], "--db", str(db)]) == 0
    assert "is UNKNOWN" in capsys.readouterr().out
    refused = promote(capsys, db, result["run_id"])
    assert f"run {result['run_id']}: the model's provenance is unknown" in refused

    # a model run stored before runs measured their model's data is refused too
    with open_database(str(db)).begin() as conn:
        conn.execute(update(RunRow).values(model_data_json=None, in_sample_fraction=None))
    assert main(["runs", "show", result["run_id"], "--db", str(db)]) == 0
    assert "model data: not recorded" in capsys.readouterr().out
    assert "records no measure of the data the model was trained on" in promote(
        capsys, db, result["run_id"]
    )


def test_a_live_feed_is_out_of_sample_only_after_everything_the_model_saw() -> None:
    prov = stated(date(2021, 1, 1), date(2021, 3, 31), None)
    start = int(np.datetime64("2021-06-01T03:45", "ns").astype(np.int64))
    after = measure_live([("a" * 64, prov)], start)
    assert after["in_sample_fraction"] == 0.0 and after["period"]["kind"] == "live"
    early = int(np.datetime64("2021-03-15T03:45", "ns").astype(np.int64))
    during = measure_live([("a" * 64, prov)], early)
    assert during["in_sample_fraction"] is None and "past this live session" in during["note"]
    mixed = measure_live([("a" * 64, prov), ("b" * 64, unknown("not stated"))], start)
    assert mixed["provenance"] == "unknown" and mixed["in_sample_fraction"] is None


def test_a_long_overlap_names_ten_symbols_and_counts_the_rest() -> None:
    from app.overlap import describe

    entry = {
        "bars": 10, "in_sample_bars": 10, "in_sample_fraction": 1.0,
        "first_in_sample": "2021-01-04 09:15", "last_in_sample": "2021-01-04 10:00",
    }  # fmt: skip
    data = {
        "provenance": MEASURED, "models": [], "in_sample_fraction": 1.0, "in_sample_bars": 120,
        "period": {"symbol_bars": 120}, "symbols": {f"S{i:02d}": entry for i in range(12)},
    }  # fmt: skip
    lines = describe(data)
    assert sum(line.startswith("  S") for line in lines) == 10
    assert "  … and 2 more symbols (--json: all)" in lines
