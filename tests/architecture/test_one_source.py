"""One source of truth per fact: where two places could disagree, a test holds them together.

Each test here guards a fact that once lived in two or more places and drifted: the code-version
stamp, the feature-spec mismatch error, the exchange time zone, the session hours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.store.database import open_database
from engine.store.queries import load_run
from engine.store.recorder import RunRecorder
from engine.version import code_version
from models.checkpoint import ModelBundle, save_bundle
from models.network import IntradayClassifier, ModelConfig
from models.scaler import Scaler


def test_a_model_file_and_a_run_from_one_checkout_carry_the_same_code_version(
    tmp_path: Path,
) -> None:
    """Models and runs are matched up by their stamp: both must write the very same string."""
    config = ModelConfig(n_features=4, window=4, hidden_size=4, num_heads=1, head_hidden=(4,))
    bundle = ModelBundle(
        model=IntradayClassifier(config).eval(),
        scaler=Scaler(np.zeros(4), np.ones(4), 1),
        spec_hash="s" * 64,
    )
    model_path = tmp_path / "m.ckpt"
    save_bundle(bundle, model_path)
    stamped_model = torch.load(model_path, weights_only=True)["code_version"]

    db = open_database(str(tmp_path / "runs.db"))
    recorder = RunRecorder(db, "backtest")
    recorder.start("sma_cross", {}, "fingerprint")
    stamped_run = load_run(db, recorder.run_id)["code_version"]

    assert stamped_model == stamped_run == code_version()
