"""A tiny CPU training run: checkpoints, log, determinism, weights-only round trip, the test
period scored once with the chosen checkpoint, and the provenance the file carries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_bundle
from models.dataset import FeatureTable, WindowSet
from models.labels import LabelConfig
from models.metrics import classification_report
from models.network import ModelConfig
from models.provenance import MEASURED
from models.synthetic import synthetic_table
from models.train import (
    TrainConfig,
    TrainResult,
    checkpoint_name,
    class_weights,
    prepare_data,
    train,
)

SEED_NAME = re.compile(r"^intraday-epoch=\d{2}-val_loss=\d+\.\d{4}-val_accuracy=\d\.\d{4}\.ckpt$")
MODEL = ModelConfig(n_features=12, window=20, hidden_size=16, num_heads=2, head_hidden=(16,))
LABELS = LabelConfig(horizon=3, vol_window=20)


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return synthetic_table(n_symbols=2, days=6, n_features=12, seed=5)


def config(seed: int = 0, epochs: int = 2) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=64,
        seed=seed,
        progress=False,
        max_windows=400,
        num_threads=1,
        device="cpu",
    )


def run(table: FeatureTable, out: Path, seed: int = 0, epochs: int = 2) -> TrainResult:
    cfg = config(seed, epochs)
    return train(table, out, MODEL, LABELS, cfg, interval_minutes=5, echo=lambda _: None)


@pytest.fixture(scope="module")
def trained(table: FeatureTable, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return run(table, tmp_path_factory.mktemp("train"))


def test_checkpoint_names_follow_the_seed(trained: TrainResult) -> None:
    assert SEED_NAME.match(trained.best_path.name), trained.best_path.name
    assert checkpoint_name(3, 1.01771, 0.56123) == (
        "intraday-epoch=03-val_loss=1.0177-val_accuracy=0.5612.ckpt"
    )
    assert trained.model_path.exists()


def test_checkpoint_is_weights_only_and_complete(trained: TrainResult, table: FeatureTable) -> None:
    raw = torch.load(trained.best_path, weights_only=True)
    assert raw["model_config"] == MODEL.to_dict()
    assert raw["feature_spec"]["hash"] == table.spec_hash
    assert raw["label_config"] == LABELS.to_dict()
    assert raw["code_version"]
    assert raw["scaler"]["mean"].shape == (12,)
    assert {"val_loss", "val_accuracy", "validation", "test", "baselines"} <= set(raw["metrics"])
    for part in ("validation", "test"):
        assert {"per_class_accuracy", "confusion_matrix", "loss"} <= set(raw["metrics"][part])
        assert {"majority", "logistic"} <= set(raw["metrics"]["baselines"][part])
    assert raw["provenance"]["basis"] == MEASURED
    bundle = load_bundle(trained.best_path, expected_spec_hash=table.spec_hash)
    assert bundle.model_hash == trained.model_hash
    assert bundle.interval_minutes == 5
    assert bundle.metrics["val_loss"] == pytest.approx(trained.best_metrics["val_loss"])


def test_training_log_has_the_judging_numbers(trained: TrainResult) -> None:
    records = [json.loads(line) for line in trained.log_path.read_text().splitlines()]
    setup, epochs, done = records[0], records[1:-1], records[-1]
    assert setup["event"] == "setup" and setup["device"] == "cpu" and setup["amp"] is None
    assert set(setup["labels"]["train"]["counts"]) == {"SELL", "HOLD", "BUY"}
    assert setup["split"]["gap_bars"] >= LABELS.horizon
    assert len(epochs) == 2
    for rec in epochs:
        assert set(rec["per_class_accuracy"]) == {"SELL", "HOLD", "BUY"}
        cm = np.array(rec["confusion_matrix"])
        assert cm.shape == (3, 3) and cm.sum() == setup["split"]["val_windows"]
        assert 0 < rec["majority_baseline_accuracy"] < 1
    assert done["event"] == "done" and done["peak_memory_mb"] > 0
    assert np.array(done["test"]["confusion_matrix"]).sum() == setup["split"]["test_windows"]
    for part in ("validation", "test"):
        logistic = done["baselines"][part]["logistic"]
        assert 0 <= logistic["accuracy"] <= 1 and logistic["fitted_on"] > 0
        assert done["baselines"][part]["majority"]["class"] in {"SELL", "HOLD", "BUY"}


def test_training_is_deterministic_for_a_seed(
    trained: TrainResult, table: FeatureTable, tmp_path: Path
) -> None:
    again = run(table, tmp_path / "same")
    assert again.model_hash == trained.model_hash
    other = run(table, tmp_path / "other", seed=1, epochs=1)
    assert other.model_hash != trained.model_hash


def test_class_weights_balance_the_classes() -> None:
    w = class_weights(np.array([0, 1, 1, 1, 2, 2]))
    np.testing.assert_allclose(w, [2.0, 2 / 3, 1.0])
    assert class_weights(np.array([1, 1, 2]))[0] == 0.0


def test_training_without_prices_is_a_clear_error(table: FeatureTable, tmp_path: Path) -> None:
    bare = FeatureTable(
        table.ts_ns,
        table.symbol_codes,
        table.symbols,
        table.values,
        table.ready,
        table.spec_hash,
        table.feature_names,
        None,
    )
    with pytest.raises(ValueError, match="close prices"):
        run(bare, tmp_path)


def test_cuda_request_without_cuda_is_refused(table: FeatureTable, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    cfg = TrainConfig(epochs=1, device="cuda", progress=False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(table, tmp_path, MODEL, LABELS, cfg, echo=lambda _: None)


def test_the_test_period_is_scored_with_the_chosen_checkpoint(
    trained: TrainResult, table: FeatureTable
) -> None:
    """The stored test scores are the chosen weights' calls on the test windows (recomputed
    here from the file), next to baselines scored on those same windows."""
    data = prepare_data(table, MODEL.window, LABELS, config())
    bundle = load_bundle(trained.model_path, expected_spec_hash=table.spec_hash)
    windows = WindowSet(table, data.split.test, MODEL.window, data.labels)
    x, y = windows.batch(np.arange(len(windows)))
    assert y is not None
    scaled = (x.numpy() - bundle.scaler.mean) / bundle.scaler.scale
    with torch.inference_mode():
        preds = bundle.model(torch.from_numpy(scaled.astype(np.float32))).argmax(dim=1).numpy()
    expected = classification_report(y.numpy(), preds)
    stored = bundle.metrics["test"]
    assert stored["confusion_matrix"] == expected["confusion_matrix"]
    assert stored["windows"] == len(data.split.test)
    majority = bundle.metrics["baselines"]["test"]["majority"]
    assert sum(majority["support"].values()) == len(data.split.test)
    # the chosen checkpoint's file and model.ckpt carry the same weights and the test scores
    best = load_bundle(trained.best_path, expected_spec_hash=table.spec_hash)
    assert best.model_hash == bundle.model_hash == trained.model_hash
    assert best.metrics["test"] == stored


def test_the_test_period_plays_no_part_in_training_or_choosing(
    trained: TrainResult, table: FeatureTable, tmp_path: Path
) -> None:
    """Change every bar of the test period (features and prices): the weights, the chosen
    epoch and the validation scores stay exactly the same — only the test scores move."""
    split = prepare_data(table, MODEL.window, LABELS, config()).split
    later = table.ts_ns >= split.test_cut_ts_ns
    values, close = table.values.copy(), table.close.copy()
    values[later & table.ready] *= 3.0
    close[later] *= np.exp(np.sin(np.arange(int(later.sum()))) * 0.01)
    changed = FeatureTable(
        table.ts_ns, table.symbol_codes, table.symbols, values, table.ready,
        table.spec_hash, table.feature_names, close,
    )  # fmt: skip
    again = run(changed, tmp_path)
    assert again.model_hash == trained.model_hash
    assert again.best_metrics["epoch"] == trained.best_metrics["epoch"]
    assert again.best_metrics["validation"] == trained.best_metrics["validation"]
    assert again.best_metrics["test"]["loss"] != trained.best_metrics["test"]["loss"]


def test_the_file_records_the_data_it_was_trained_on(
    trained: TrainResult, table: FeatureTable
) -> None:
    data = prepare_data(table, MODEL.window, LABELS, config())
    split, ts, h, w = data.split, table.ts_ns, LABELS.horizon, MODEL.window
    prov = load_bundle(trained.model_path, expected_spec_hash=table.spec_hash).provenance
    assert prov.basis == MEASURED and prov.symbols == table.symbols
    assert prov.interval_minutes == 5 and prov.spec_hash == table.spec_hash
    assert prov.data_fingerprint == table.fingerprint()
    for code, symbol in enumerate(table.symbols):
        for part, ends in (("train", split.train), ("validation", split.val), ("test", split.test)):
            mine = ends[table.symbol_codes[ends] == code]
            span = prov.per_symbol[symbol][part]
            # from the first window's first row to the last row a label of the part reads
            assert span.first_ns == ts[mine.min() - (w - 1)]
            assert span.last_ns == ts[mine.max() + h]
    assert prov.train is not None and prov.validation is not None and prov.test is not None
    assert prov.train.last_ns < split.cut_ts_ns <= split.test_cut_ts_ns
    assert prov.validation.last_ns < split.test_cut_ts_ns
    assert prov.test.last_ns >= split.test_cut_ts_ns
    assert prov.seen_spans("SYM0") == [prov.per_symbol["SYM0"][p] for p in ("train", "validation")]
    assert prov.seen_spans("NOT-TRAINED-ON") == []
