"""A tiny CPU training run: checkpoints, log, determinism, weights-only round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_bundle
from models.dataset import FeatureTable
from models.labels import LabelConfig
from models.network import ModelConfig
from models.synthetic import synthetic_table
from models.train import TrainConfig, TrainResult, checkpoint_name, class_weights, train

SEED_NAME = re.compile(r"^intraday-epoch=\d{2}-val_loss=\d+\.\d{4}-val_accuracy=\d\.\d{4}\.ckpt$")
MODEL = ModelConfig(n_features=12, window=20, hidden_size=16, num_heads=2, head_hidden=(16,))
LABELS = LabelConfig(horizon=3, vol_window=20)


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return synthetic_table(n_symbols=2, days=6, n_features=12, seed=5)


def run(table: FeatureTable, out: Path, seed: int = 0, epochs: int = 2) -> TrainResult:
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=64,
        seed=seed,
        progress=False,
        max_windows=400,
        num_threads=1,
        device="cpu",
    )
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
    assert {"val_loss", "val_accuracy", "per_class_accuracy", "confusion_matrix"} <= set(
        raw["metrics"]
    )
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
    assert "accuracy" in done["logistic_baseline"]


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
