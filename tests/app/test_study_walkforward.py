"""Walk-forward studies on the real NSE bars (2 symbols, 2021): 2-month training / 1-month test
folds, tiny models. On local Ray the study equals the same study run in this process, bit for
bit, and its stitched out-of-sample curve equals the per-fold `trader backtest` runs chained;
an interrupted study resumes without recomputing finished folds, a worker killed mid-fold is
retried, and bad input is refused with nothing stored lost."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main
from app.study import tasks
from config.settings import load_settings
from engine.metrics import compute_metrics
from engine.store.database import open_database
from engine.store.queries import load_equity
from engine.store.studies import load_study
from tests.support.browser import headless_chromium
from tests.support.paths import NSE_DIR, ROOT

PERIOD = ["--start-date", "2021-01-01", "--end-date", "2021-04-30"]  # 2 folds: March, April
FOLDS = ["--train", "2M", "--test", "1M"]
# 6000 windows: enough rows that the logistic baseline's BLAS sums split over threads —
# in-process and Ray worker thread pools differ unless each unit fixes them (it does)
TINY = [
    "--epochs", "1", "--max-windows", "6000", "--window", "20", "--hidden-size", "16",
    "--device", "cpu", "--threads", "1",
]  # fmt: skip
# an untrained net's probabilities sit near 1/3: thresholds that make it trade
TRADING = ["--param", "entry_threshold=0.34", "--param", "exit_threshold=0.33"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One embedded Ray for the module (the study uses a running Ray and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )  # fmt: skip
    yield
    ray.shutdown()


def study(tmp: Path, name: str, *extra: str, strategy: str = "model") -> tuple[int, Path]:
    db = tmp / f"{name}.db"
    args = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", strategy, *PERIOD,
            *FOLDS, "--out", str(tmp / name), "--db", str(db), *extra]  # fmt: skip
    if strategy == "model":
        args += [*TINY, *TRADING]
    return main(args), db


def stored(db: Path) -> dict[str, Any]:
    engine = open_database(str(db))
    (only,) = json.loads(json.dumps([s["study_id"] for s in _studies(engine)]))
    return load_study(engine, only)


def _studies(engine: Any) -> list[dict[str, Any]]:
    from engine.store.studies import list_studies

    return list_studies(engine)


def sma_spec() -> Any:
    """The spec `trader study walkforward --strategy sma_cross` builds over the two folds."""
    from app.cli import build_parser
    from app.commands.study import study_spec

    args = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", "sma_cross", *PERIOD,
            *FOLDS]  # fmt: skip
    return study_spec(build_parser().parse_args(args))


def finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """Non-finite numbers as None, as the --json export writes them."""
    return {k: v if np.isfinite(v) else None for k, v in metrics.items()}


SAME_EVERYWHERE = ("fold", "point", "params", "train_start", "train_last", "test_start",
                   "test_end", "equity")  # fmt: skip


def comparable(study: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where the folds ran: metrics, equity, model scores."""
    folds = [
        {
            **{k: f[k] for k in SAME_EVERYWHERE},
            "backtest": f["metrics"]["backtest"],
            "model": f["metrics"].get("model"),
            "hashes": [m["model_hash"] for m in f["metrics"].get("models", [])],
        }
        for f in study["folds"]
    ]
    return {"folds": folds, "results": study["results"]}


@pytest.fixture(scope="module")
def on_ray(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ray")
    code, db = study(tmp, "wf", "--seeds", "2", "--json", str(tmp / "wf.json"))
    assert code == 0
    return {
        "study": stored(db),
        "db": db,
        "tmp": tmp,
        "json": json.loads((tmp / "wf.json").read_text()),
    }


def test_a_study_on_local_ray_equals_the_same_study_run_in_process(
    on_ray: dict[str, Any], tmp_path: Path
) -> None:
    code, db = study(tmp_path, "seq", "--seeds", "2", "--no-ray")
    assert code == 0
    ray_study, seq_study = on_ray["study"], stored(db)
    assert ray_study["status"] == seq_study["status"] == "finished"
    assert len(ray_study["folds"]) == 2
    assert comparable(ray_study) == comparable(seq_study)  # exact: floats compared bit for bit


def test_stitched_out_of_sample_metrics_equal_the_per_fold_backtests_run_one_by_one(
    on_ray: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    study_row, tmp = on_ray["study"], on_ray["tmp"]
    capital = load_settings("backtest").capital
    chained_ts, chained, level = [], [], capital
    for fold in study_row["folds"]:
        models = fold["metrics"]["models"]
        assert [m["seed"] for m in models] == [0, 1]  # --seeds 2: both seeds' ensemble traded
        db, out = tmp / f"fold{fold['fold']}.db", tmp / f"fold{fold['fold']}.json"
        args = ["backtest", "--data", str(NSE_DIR), "--strategy", "model",
                *[a for m in models for a in ("--model", m["path"])], *TRADING,
                "--param", "threads=1", "--start-date", fold["test_start"],
                "--end-date", fold["test_end"], "--db", str(db), "--json", str(out),
                "--no-progress"]  # fmt: skip
        assert main(args) == 0
        result = json.loads(out.read_text())
        backtest = fold["metrics"]["backtest"]
        assert backtest["trade_count"] > 0
        assert finite({k: backtest[k] for k in result["metrics"]}) == result["metrics"]
        assert fold["metrics"]["model"]["calls"] == result["model_calls"]
        assert result["in_sample_fraction"] == 0.0  # the fold's models never saw its test window
        ts, equity = load_equity(open_database(str(db)), result["run_id"])
        assert fold["equity"]["ts"] == ts.tolist() and fold["equity"]["equity"] == equity.tolist()
        chained_ts.append(ts)
        chained.append(equity * (level / capital))  # this fold starts where the last one ended
        level = float(chained[-1][-1])
    capsys.readouterr()
    stitched = study_row["results"]["0"]
    ts, equity = np.concatenate(chained_ts), np.concatenate(chained)
    assert stitched["equity"]["ts"] == ts.tolist()
    assert stitched["equity"]["equity"] == equity.tolist()
    settings = load_settings("backtest")
    expected = compute_metrics(ts, equity, np.zeros_like(equity), [], capital, 5, 0.0, 0.0,
                               session=settings.session.times)  # fmt: skip
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "sharpe_bar"):
        assert stitched["metrics"][key] == expected[key], key
    folds = study_row["folds"]
    assert stitched["metrics"]["trade_count"] == sum(
        f["metrics"]["backtest"]["trade_count"] for f in folds
    )
    assert stitched["metrics"]["total_costs"] == sum(
        f["metrics"]["backtest"]["total_costs"] for f in folds
    )
    # the --json export holds the folds and the stitched results
    exported = on_ray["json"]
    assert [f["fold"] for f in exported["folds"]] == [0, 1]
    assert exported["results"]["0"]["metrics"]["sharpe"] == stitched["metrics"]["sharpe"]


def test_every_fold_says_which_data_its_models_saw_and_the_lookups_read_it(
    on_ray: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study_row, db = on_ray["study"], on_ray["db"]
    for fold in study_row["folds"]:
        assert fold["train_start"] == f"2021-0{fold['fold'] + 1}-01"
        assert fold["train_last"] < fold["test_start"]
        assert fold["data_seen"].count("measured: NIFTY 50, NIFTY BANK") == 2
        assert fold["metrics"]["in_sample_fraction"] == 0.0  # measured by the backtest
        model = fold["metrics"]["model"]
        for part in ("majority", "logistic"):
            assert 0 < model["baselines"][part]["accuracy"] < 1
        assert -1 <= model["ic"]["ic"] <= 1 and model["ic"]["pairs"] > 1000
    pooled = study_row["results"]["0"]["model"]
    assert pooled["ic"]["pairs"] == sum(
        f["metrics"]["model"]["ic"]["pairs"] for f in study_row["folds"]
    )
    study_id = study_row["study_id"]
    assert main(["studies", "list", "--db", str(db)]) == 0
    assert study_id in capsys.readouterr().out
    assert main(["studies", "show", study_id, "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "model data (train 2021-01-01 → 2021-02-26 14:55 IST): seed 0: measured" in shown
    assert "stitched out-of-sample" in shown and "profitable folds" in shown
    # a lookup never creates a database
    missing = tmp_path / "none.db"
    assert main(["studies", "list", "--db", str(missing)]) == 2
    assert main(["studies", "show", study_id, "--db", str(missing)]) == 2
    assert "no database at" in capsys.readouterr().err and not missing.exists()
    assert main(["studies", "show", "wf-nope", "--db", str(db)]) == 2


def test_an_interrupted_study_resumes_without_recomputing_finished_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []
    real = tasks.backtest_unit

    def failing(spec: dict[str, Any], fold: dict[str, Any], *rest: Any) -> dict[str, Any]:
        calls.append(fold["index"])
        if fold["index"] == 1:
            raise RuntimeError("injected failure in fold 1")
        return real(spec, fold, *rest)

    monkeypatch.setattr(tasks, "backtest_unit", failing)
    code, db = study(tmp_path, "sma", "--no-ray", strategy="sma_cross")
    assert code == 1 and "injected failure in fold 1" in capsys.readouterr().err
    first = stored(db)
    assert first["status"] == "failed" and [f["fold"] for f in first["folds"]] == [0]
    done = tasks.unit_file(tmp_path / "sma", 0, 0)
    stamp = done.stat().st_mtime_ns

    calls.clear()

    def counting(spec: dict[str, Any], fold: dict[str, Any], *rest: Any) -> dict[str, Any]:
        calls.append(fold["index"])
        return real(spec, fold, *rest)

    monkeypatch.setattr(tasks, "backtest_unit", counting)
    code, db = study(tmp_path, "sma", "--no-ray", strategy="sma_cross")
    assert code == 0 and "resuming study" in capsys.readouterr().out
    assert calls == [1]  # fold 0 was read back from the store, not recomputed
    assert done.stat().st_mtime_ns == stamp
    resumed = stored(db)
    assert resumed["study_id"] == first["study_id"] and resumed["status"] == "finished"
    assert [f["fold"] for f in resumed["folds"]] == [0, 1]
    assert resumed["folds"][0]["metrics"] == first["folds"][0]["metrics"]

    # a resume with other parameters is refused naming them, and nothing stored is touched
    args = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", "sma_cross", *PERIOD,
            "--train", "3M", "--test", "1M", "--out", str(tmp_path / "sma"), "--db", str(db),
            "--no-ray", "--param", "fast=7"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "started with other parameters" in err and "--train: 2M → 3M" in err
    assert "--param: {} → {'fast': '7'}" in err
    assert stored(db) == resumed


def test_a_worker_killed_mid_fold_is_retried_and_the_study_completes(
    local_ray: None, tmp_path: Path
) -> None:
    from app.study.executors import RayExecutor
    from app.study.runner import plan_study, run_study
    from tests.support.study_faults import kill_worker_once

    spec = sma_spec()
    plan = plan_study(spec, tmp_path / "store")
    engine = open_database(str(tmp_path / "k.db"))
    outcome = run_study(plan, RayExecutor(), engine, backtest_fn=kill_worker_once)
    killed = tmp_path / "store" / "killed-once"
    assert killed.exists() and int(killed.read_text()) != os.getpid()  # a worker died
    assert sorted(outcome.computed) == [(0, 0), (1, 0)]
    result = load_study(engine, outcome.study_id)
    assert result["status"] == "finished" and len(result["folds"]) == 2
    assert result["results"]["0"]["metrics"]["folds"] == 2.0


def test_a_unit_that_raises_on_ray_fails_the_study_with_its_own_error_keeping_what_finished(
    local_ray: None, tmp_path: Path
) -> None:
    from app.study.executors import RayExecutor
    from app.study.runner import plan_study, run_study
    from tests.support.study_faults import fail_fold_one

    spec = sma_spec()
    plan = plan_study(spec, tmp_path / "store")
    engine = open_database(str(tmp_path / "f.db"))
    with pytest.raises(ValueError, match="fold 1: injected bad input"):
        run_study(plan, RayExecutor(), engine, backtest_fn=fail_fold_one)
    failed = load_study(engine, plan.study_id)
    assert failed["status"] == "failed" and "injected bad input" in failed["error"]
    assert [f["fold"] for f in failed["folds"]] == [0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train", "2X", "--test", "1M"], "--train '2X': a duration is a positive count"),
        (["--train", "2M", "--test", "9M"], "no complete fold"),
        (["--train", "2M", "--test", "1D", "--horizon", "100"],
         "has 75 bar times, not more than the label horizon of 100 bars"),
    ],
)  # fmt: skip
def test_folds_that_cannot_be_formed_are_refused(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bad.db"
    args = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", "model", *PERIOD,
            *extra, "--out", str(tmp_path / "s"), "--db", str(db), "--no-ray"]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not db.exists()


def test_an_unreachable_ray_address_is_refused_and_nothing_stored_is_lost(
    on_ray: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = stored(on_ray["db"])
    code, db = study(tmp_path, "far", "--ray-address", "127.0.0.1:9", strategy="sma_cross")
    assert code == 2
    assert "--ray-address 127.0.0.1:9: nothing answers there" in capsys.readouterr().err
    assert not db.exists()
    args = ["study", "walkforward", "--data", str(NSE_DIR), "--strategy", "sma_cross", *PERIOD,
            *FOLDS, "--db", str(on_ray["db"]), "--out", str(tmp_path / "x"),
            "--ray-address", "127.0.0.1:9"]  # fmt: skip
    assert main(args) == 2
    assert stored(on_ray["db"]) == before


def test_the_study_report_opens_offline_with_dated_axes_and_ic_by_fold(
    on_ray: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_row = on_ray["study"]
    report = tmp_path / "study.html"
    assert main(["studies", "show", study_row["study_id"], "--db", str(on_ray["db"]),
                 "--report", str(report)]) == 0  # fmt: skip
    assert f"report: {report}" in capsys.readouterr().out
    requests: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        assert page.locator("tr.fold-row").count() == 2
        ticks = page.locator("#equity text.xtick").all_text_contents()
        assert ticks[0] == "01 Mar 2021" and ticks[-1] == "30 Apr 2021"
        assert page.locator("#equity line.fold").count() == 1  # one boundary: April starts
        points = page.locator("#equity polyline").get_attribute("points") or ""
        assert len(points.split()) > 1000
        assert page.locator("#ic rect.icbar").count() == 2
        titles = page.locator("#ic rect.icbar title").all_text_contents()
        ics = [f["metrics"]["model"]["ic"]["ic"] for f in study_row["folds"]]
        assert titles == [f"{v:.4f}" for v in ics]
        stitched = page.locator("#stitched-0").inner_text()
        sharpe = study_row["results"]["0"]["metrics"]["sharpe"]
        assert f"Sharpe {sharpe:.2f}" in stitched and "profitable folds" in stitched
    assert requests == [report.as_uri()]  # nothing fetched: it opens offline
