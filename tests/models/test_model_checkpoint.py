"""The model file: weights-only loadable, complete, and refused on a feature-spec mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import ModelBundle, check_spec, load_bundle, running_spec, save_bundle
from models.errors import CheckpointError, SpecMismatchError
from models.labels import LabelConfig
from models.network import IntradayClassifier, ModelConfig
from models.scaler import Scaler

CFG = ModelConfig(n_features=6, window=8, hidden_size=8, num_heads=2, head_hidden=(8,))


def bundle(spec_hash: str = "a" * 64, seed: int = 0) -> ModelBundle:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    return ModelBundle(
        model=IntradayClassifier(CFG).eval(),
        scaler=Scaler(rng.normal(size=6), rng.uniform(0.5, 2, size=6), 100),
        spec_hash=spec_hash,
        feature_names=tuple(f"f{i}" for i in range(6)),
        label_config=LabelConfig(horizon=4),
        metrics={"val_loss": 1.01, "confusion_matrix": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]},
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    original = bundle()
    path = tmp_path / "m.ckpt"
    digest = save_bundle(original, path)
    raw = torch.load(path, weights_only=True)  # no pickled code inside
    assert raw["format"] == "nse-trader/model"
    back = load_bundle(path, expected_spec_hash="a" * 64)
    assert back.model_hash == digest == original.model_hash
    assert back.config == CFG
    assert back.label_config == LabelConfig(horizon=4)
    assert back.feature_names == original.feature_names
    np.testing.assert_array_equal(back.scaler.scale, original.scaler.scale)
    assert back.metrics["confusion_matrix"][2] == [7, 8, 9]
    x = torch.randn(3, 8, 6)
    with torch.inference_mode():
        torch.testing.assert_close(back.model(x), original.model(x), rtol=0, atol=0)


def test_model_hash_tracks_weights_not_metrics() -> None:
    a, b = bundle(seed=0), bundle(seed=0)
    b.metrics = {"val_loss": 9.0}
    assert a.model_hash == b.model_hash
    assert bundle(seed=1).model_hash != a.model_hash


def test_spec_mismatch_is_refused_with_both_hashes(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    save_bundle(bundle("a" * 64), path)
    with pytest.raises(SpecMismatchError) as err:
        load_bundle(path, expected_spec_hash="b" * 64)
    assert "a" * 64 in str(err.value) and "b" * 64 in str(err.value)
    assert isinstance(err.value, ValueError)


def test_default_check_is_against_the_running_calculator(tmp_path: Path) -> None:
    running = running_spec()
    if running is None:
        pytest.skip("feature calculator not importable")
    path = tmp_path / "m.ckpt"
    save_bundle(bundle("f" * 64), path)
    with pytest.raises(SpecMismatchError, match=running[0]):
        load_bundle(path)
    save_bundle(bundle(running[0]), path)
    assert load_bundle(path).spec_hash == running[0]


def test_check_spec_is_a_no_op_without_a_calculator() -> None:
    check_spec("x", "a", None)
    with pytest.raises(SpecMismatchError):
        check_spec("x", "a", "b")


def test_unreadable_or_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such model file"):
        load_bundle(tmp_path / "missing.ckpt", None)
    foreign = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    with pytest.raises(CheckpointError, match="model import"):
        load_bundle(foreign, None)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt"):
        load_bundle(garbage, None)
    broken = tmp_path / "broken.ckpt"
    raw = torch.load(_saved(bundle(), tmp_path / "ok.ckpt"), weights_only=True)
    raw["state_dict"].pop("norm.weight")
    torch.save(raw, broken)
    with pytest.raises(CheckpointError, match=r"norm\.weight"):
        load_bundle(broken, None)


def _saved(b: ModelBundle, path: Path) -> Path:
    save_bundle(b, path)
    return path


def test_provenance_round_trips_and_older_files_read_as_unknown(tmp_path: Path) -> None:
    from datetime import date

    from models.provenance import STATED, UNKNOWN, stated

    original = bundle()
    original.provenance = stated(date(2021, 1, 1), date(2024, 12, 31), ["INFY", "TCS"])
    path = tmp_path / "m.ckpt"
    save_bundle(original, path)
    back = load_bundle(path, expected_spec_hash=None).provenance
    assert back == original.provenance and back.basis == STATED
    assert back.symbols == ("INFY", "TCS")
    # a file written before models carried provenance
    raw = torch.load(path, weights_only=True)
    del raw["provenance"]
    old = tmp_path / "old.ckpt"
    torch.save(raw, old)
    legacy = load_bundle(old, expected_spec_hash=None)
    assert legacy.provenance.basis == UNKNOWN and not legacy.provenance.known
    assert legacy.provenance.summary().startswith("provenance unknown")
    assert legacy.provenance.seen_spans("INFY") is None
    assert legacy.model_hash == original.model_hash  # provenance is not what the model computes
    raw["provenance"] = {"basis": "stated", "train": {"first_ns": 5}}
    torch.save(raw, old)
    with pytest.raises(CheckpointError, match="provenance entry is malformed"):
        load_bundle(old, expected_spec_hash=None)
