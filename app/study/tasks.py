"""The two units of work of a walk-forward study, as plain functions of JSON-able arguments so
the same code runs in this process (``--no-ray``) and in a Ray worker:

- ``train_unit``: one seed's model on one fold's training window (features from the bars of
  ``train_start → train_end``, rows after ``train_last`` — the purge gap — dropped), trained as
  ``trader train`` trains; the first seed also fits the fold's majority/logistic baselines.
- ``backtest_unit``: one fold × grid point out of sample: the test window's bars through
  ``run_backtest`` — the event replay ``trader backtest`` runs, costs and all — with the
  fold's models as one ensemble (``Predictor`` averages their probabilities behind the
  ``PredictorPort``), then the model's calls, baselines and IC on the same bars.

Each writes its result into the study's directory store (atomically: a file exists only once
complete), which is how a resumed study knows what is done and how workers on other machines
hand models to each other. Nothing here touches the database: the driver does.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.study.spec import StudySpec
from models.folds import Fold

UnitFn = Callable[..., dict[str, Any]]
BASELINE_FILE = "baseline.npz"
DONE_FILE = "done.json"


def fold_dir(store: str | Path, fold: int) -> Path:
    return Path(store) / f"fold-{fold:02d}"


def seed_dir(store: str | Path, fold: int, seed: int) -> Path:
    return fold_dir(store, fold) / f"seed-{seed}"


def unit_file(store: str | Path, fold: int, point: int) -> Path:
    return fold_dir(store, fold) / f"point-{point}.json"


def write_json(path: Path, value: Any) -> None:
    """Write then rename: a reader (a resume, another worker) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def read_done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _settings(spec: StudySpec) -> Any:
    from config.settings import EngineSettings

    return EngineSettings.model_validate(spec.settings)


def fixed_threads(unit: UnitFn) -> UnitFn:
    """Run a unit with the study's thread count for torch *and* the BLAS/OpenMP pools (numpy,
    scikit-learn's logistic baseline): a sum split over another number of threads rounds
    differently, and a Ray worker's default (1) differs from this process's (all cores)."""

    @functools.wraps(unit)
    def run(spec_dict: dict[str, Any], *args: Any) -> dict[str, Any]:
        import torch
        from threadpoolctl import threadpool_limits

        threads = StudySpec.from_dict(spec_dict).threads
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            return unit(spec_dict, *args)

    return run


@fixed_threads
def train_unit(
    spec_dict: dict[str, Any], fold_dict: dict[str, Any], seed: int, store: str
) -> dict[str, Any]:
    """Train one seed on the fold's training window; returns (and stores) what the backtest
    needs: the model file, its hash and the data it saw."""
    from app.commands.models import model_configs
    from models.checkpoint import load_bundle
    from models.feature_source import table_from_bars
    from models.train import fit_training_baseline, prepare_data, train

    spec, fold = StudySpec.from_dict(spec_dict), Fold.from_dict(fold_dict)
    started = time.perf_counter()
    settings = _settings(spec)
    table, interval = table_from_bars(
        spec.data, spec.interval, session=settings.session.times, data=settings.data,
        start=fold.train_start, end=fold.train_end,
    )  # fmt: skip
    table = table.select(table.ts_ns <= fold.train_last_ns)  # the purge gap is seen by no one
    options = {**spec.training, "seed": seed, "threads": spec.threads, "no_progress": True}
    model_cfg, label_cfg, cfg = model_configs(argparse.Namespace(**options), table.n_features)
    out = seed_dir(store, fold.index, seed)
    result = train(
        table, out, model_cfg, label_cfg, cfg, interval_minutes=interval, echo=lambda _: None
    )
    if seed == spec.seed_list()[0]:  # one baseline per fold, fitted on the same training rows
        data = prepare_data(table, model_cfg.window, label_cfg, cfg)
        fit_training_baseline(data, seed=seed).save(fold_dir(store, fold.index) / BASELINE_FILE)
    bundle = load_bundle(result.model_path, expected_spec_hash=None)
    best = result.best_metrics
    info = {
        "fold": fold.index,
        "seed": seed,
        "path": str(result.model_path),
        "model_hash": bundle.model_hash,
        "data_seen": bundle.provenance.summary(),
        "provenance": bundle.provenance.to_dict(),
        "inner": {  # inside the training window: validation chose the checkpoint
            "epoch": best["epoch"],
            "val_accuracy": best["val_accuracy"],
            "test_accuracy": best["test"]["accuracy"],
        },
        "seconds": time.perf_counter() - started,
    }
    write_json(out / DONE_FILE, info)
    return info


@fixed_threads
def backtest_unit(
    spec_dict: dict[str, Any],
    fold_dict: dict[str, Any],
    point: int,
    store: str,
    *trained: dict[str, Any],
) -> dict[str, Any]:
    """The fold's test window through the backtest replay at grid point ``point``."""
    from app.runners.backtest import run_backtest
    from app.wiring import check_strategy
    from engine.data.loader import load_bars
    from strategies.registry import make_strategy

    spec, fold = StudySpec.from_dict(spec_dict), Fold.from_dict(fold_dict)
    started = time.perf_counter()
    settings = _settings(spec)
    bars = load_bars(
        spec.data, spec.interval, fold.test_start, fold.test_end,
        session=settings.session.times, data=settings.data,
    )  # fmt: skip
    params = backtest_params(spec, point, trained)
    strategy = make_strategy(spec.strategy, params)
    check_strategy(strategy)
    result = asyncio.run(run_backtest(bars, strategy, settings, None))
    pf = result.pipeline.portfolio
    out: dict[str, Any] = {
        "fold": fold.index,
        "point": point,
        "params": spec.points()[point],
        "metrics": result.metrics,
        "trades_pnl": [t.pnl for t in pf.trades if t.closed],
        "equity": {
            "ts": [int(t) for t in pf.curve_ts],
            "equity": [float(e) for e in pf.curve_equity],
            "gross": [float(g) for g in pf.curve_gross],
        },
        "symbol_bars": result.symbol_bars,
        "orders": result.orders,
        "data_fingerprint": result.data_fingerprint,
        "in_sample_fraction": result.extra.get("in_sample_fraction"),
        "models": list(trained),
        "model": model_scores(strategy, result, store, fold.index) if trained else None,
        "seconds": time.perf_counter() - started,
    }
    write_json(unit_file(store, fold.index, point), out)
    return out


def backtest_params(
    spec: StudySpec, point: int, trained: tuple[dict[str, Any], ...] | list[dict[str, Any]]
) -> dict[str, str]:
    """The strategy parameters of a fold's backtest — exactly what ``trader backtest --param …
    [--model M …]`` would be given to repeat it."""
    params = dict(spec.points()[point])
    if spec.trains_models:
        params["model"] = ",".join(t["path"] for t in trained)
        params.setdefault("threads", str(spec.threads))
    return params


def model_scores(strategy: Any, result: Any, store: str, fold: int) -> dict[str, Any]:
    """The ensemble's calls on the test window against realised labels, the fold's baselines
    on the same bars, and the IC of P(BUY) − P(SELL) against the realised forward return."""
    from models.baselines import LinearBaseline
    from models.labels import UNLABELED, make_labels
    from models.predictions import information_coefficients, signal_and_returns, table_rows

    ahead = strategy.predictor
    table, preds = ahead.table, ahead.predictions
    label_cfg = ahead.predictor.bundles[0].label_config
    signal, realised, _ = signal_and_returns(preds, table, label_cfg)
    labels = make_labels(table.close, table.symbol_codes, table.session_ids, label_cfg)
    rows = table_rows(preds, table)
    rows = rows[rows >= 0]
    rows = rows[labels[rows] != UNLABELED]
    baseline = LinearBaseline.load(fold_dir(store, fold) / BASELINE_FILE)
    return {
        "calls": result.extra["model_calls"],
        "baselines": baseline.score(table.values[rows], labels[rows]),
        "ic": information_coefficients(signal, realised),
        "signal": signal.tolist(),
        "forward_return": realised.tolist(),
        "horizon": label_cfg.horizon,
    }
