"""A small model that trades: random weights, last layer recentred on the data it will see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.checkpoint import ModelBundle, save_bundle
from models.dataset import FeatureTable, WindowSet, window_ends
from models.network import IntradayClassifier, ModelConfig
from models.scaler import Scaler


def trading_model(
    table: FeatureTable,
    path: Path,
    window: int = 20,
    seed: int = 1,
    scaler: Scaler | None = None,
) -> Path:
    """Save a tiny network for ``table``'s feature spec whose calls vary from bar to bar.

    A random network's probabilities hardly move; scaling and centring the last layer on the
    logits it produces over ``table`` spreads them, so thresholds around 0.5 trade often —
    what tests comparing two decision paths need (it says nothing about skill). The scaler is
    fitted on ``table``'s ready rows unless one is given."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        n_features=table.n_features, window=window, hidden_size=8, num_heads=2, head_hidden=(8,)
    )
    model = IntradayClassifier(cfg).eval()
    if scaler is None:
        ready = table.values[table.ready]
        mean, scale = ready.mean(axis=0).astype(np.float64), ready.std(axis=0) + 1e-6
        scaler = Scaler(mean, scale, len(ready))
    windows = WindowSet(
        table, window_ends(table, window), window, mean=scaler.mean, scale=scaler.scale
    )
    with torch.no_grad():
        z = model(torch.from_numpy(windows.gather(np.arange(len(windows)))))
        k = 2.0 / z.std(dim=0)
        model.head[-1].weight.mul_(k[:, None])
        model.head[-1].bias.mul_(k).sub_((z * k).mean(dim=0))
    save_bundle(ModelBundle(model, scaler, table.spec_hash), path)
    return path
