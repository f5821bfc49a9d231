"""Inference: ring buffers hold exactly the window a table would give; ensembles average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import ModelBundle
from models.dataset import FeatureTable
from models.errors import ModelError
from models.inference import FeatureRing, OnlinePredictor, Predictor
from models.network import IntradayClassifier, ModelConfig
from models.precision import precision_support
from models.predictions import predict_table
from models.scaler import Scaler
from models.synthetic import synthetic_table

N_FEATURES, WINDOW = 6, 12


def make_bundle(
    seed: int, spec: str = "synthetic-spec", cross_sessions: bool = True, window: int = WINDOW
) -> ModelBundle:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        n_features=N_FEATURES, window=window, hidden_size=8, num_heads=2, head_hidden=(8,)
    )
    model = IntradayClassifier(cfg).eval()
    with torch.no_grad():
        model.head[-1].weight.mul_(30)  # spread the probabilities so decisions vary
    rng = np.random.default_rng(seed)
    scaler = Scaler(rng.normal(1.5, 0.5, N_FEATURES), rng.uniform(0.5, 2.0, N_FEATURES), 10)
    return ModelBundle(model, scaler, spec, cross_sessions=cross_sessions)


def test_ring_windows_equal_directly_built_windows() -> None:
    rng = np.random.default_rng(0)
    ring = FeatureRing(window=5, n_features=3, capacity=2)  # grows on demand
    history: dict[int, list[np.ndarray]] = {s: [] for s in range(6)}
    for step in range(60):
        sid = np.sort(rng.choice(6, size=rng.integers(1, 7), replace=False)).astype(np.int64)
        values = rng.normal(size=(len(sid), 3)).astype(np.float32)
        ready = rng.random(len(sid)) > 0.1
        if step % 17 == 0:
            ring.reset(sid[:1])
            history[int(sid[0])] = []
        ring.push(sid, values, ready)
        for k, s in enumerate(sid):
            history[int(s)] = [*history[int(s)], values[k]] if ready[k] else []
        full = ring.full(sid)
        expect_full = np.array([len(history[int(s)]) >= 5 for s in sid])
        np.testing.assert_array_equal(full, expect_full)
        if full.any():
            got = ring.windows(sid[full])
            want = np.stack([np.stack(history[int(s)][-5:]) for s in sid[full]])
            np.testing.assert_array_equal(got, want)
    assert ring.capacity >= 6


@pytest.mark.parametrize("cross_sessions", [True, False])
def test_online_slices_match_batched_table_predictions(cross_sessions: bool) -> None:
    table = synthetic_table(n_symbols=3, days=3, bars_per_day=20, n_features=N_FEATURES, seed=4)
    predictor = Predictor([make_bundle(0, cross_sessions=cross_sessions)])
    ahead = predict_table(predictor, table, batch_size=7)
    online = OnlinePredictor(predictor, capacity=1)
    days = table.session_ids
    session_open = np.ones(len(table), dtype=bool)
    session_open[1:] = (days[1:] != days[:-1]) | (table.symbol_codes[1:] != table.symbol_codes[:-1])
    n_checked = 0
    for ts in np.unique(table.ts_ns):
        rows = np.flatnonzero(table.ts_ns == ts)
        sid = table.symbol_codes[rows].astype(np.int64)
        positions, probs = online.update(
            sid, table.values[rows], table.ready[rows], session_open[rows]
        )
        symbols = tuple(table.symbols[s] for s in sid)
        pos_b, probs_b = ahead.lookup(int(ts), symbols)
        np.testing.assert_array_equal(positions, pos_b)
        np.testing.assert_allclose(probs, probs_b, atol=1e-6)
        n_checked += len(positions)
    assert n_checked == len(ahead) > 0


def test_ensemble_averages_probabilities() -> None:
    a, b = make_bundle(1), make_bundle(2)
    x = np.random.default_rng(3).normal(size=(4, WINDOW, N_FEATURES)).astype(np.float32)
    pa, pb = Predictor([a]).predict(x), Predictor([b]).predict(x)
    both = Predictor([a, b])
    np.testing.assert_allclose(both.predict(x), (pa + pb) / 2, atol=1e-7)
    np.testing.assert_allclose(both.predict(x).sum(axis=1), 1.0, atol=1e-6)
    assert both.model_hash != Predictor([a]).model_hash


def test_ensemble_members_must_share_spec_and_window() -> None:
    with pytest.raises(ModelError, match="feature spec hash"):
        Predictor([make_bundle(1), make_bundle(2, spec="other")])
    with pytest.raises(ModelError, match="window"):
        Predictor([make_bundle(1), make_bundle(2, window=WINDOW + 1)])
    with pytest.raises(ModelError, match=r"\[batch, 12, 6\]"):
        Predictor([make_bundle(1)]).predict(np.zeros((2, 11, 6), dtype=np.float32))


BF16 = precision_support("bf16", "cpu")


@pytest.mark.skipif(
    not BF16.available,
    reason=f"bf16 LSTM inference does not run on this CPU ({BF16.capability}: {BF16.detail})",
)
def test_bf16_path_stays_close_to_fp32() -> None:
    bundle = make_bundle(5)
    x = np.random.default_rng(6).normal(size=(16, WINDOW, N_FEATURES)).astype(np.float32)
    z32 = Predictor([bundle]).logits(x)[0]
    z16 = Predictor([bundle], precision="bf16").logits(x)[0]
    assert float((z32 - z16).abs().max()) < 0.05 * float(z32.abs().max())


def test_spec_mismatch_between_model_and_features_is_refused() -> None:
    table = synthetic_table(
        n_symbols=1, days=1, bars_per_day=20, n_features=N_FEATURES, spec_hash="another-spec"
    )
    assert isinstance(table, FeatureTable)
    with pytest.raises(ValueError, match="another-spec"):
        predict_table(Predictor([make_bundle(0)]), table)


def test_scoring_calls_against_realised_labels() -> None:
    from models.labels import LabelConfig, make_labels
    from models.predictions import PredictionTable, score_predictions

    table = synthetic_table(n_symbols=2, days=2, bars_per_day=30, n_features=N_FEATURES, seed=2)
    cfg = LabelConfig(horizon=3, mode="fixed", threshold=0.0005)
    labels = make_labels(table.close, table.symbol_codes, table.session_ids, cfg)
    rows = np.arange(10, len(table), 3)
    probs = np.full((len(rows), 3), 0.1, dtype=np.float32)
    known = labels[rows] >= 0
    truth = np.where(known, labels[rows], 0)
    calls = np.where(np.arange(len(rows)) % 4 == 0, (truth + 1) % 3, truth)  # 1 in 4 wrong
    probs[np.arange(len(rows)), calls] = 0.8
    preds = PredictionTable(table.ts_ns[rows], table.symbol_codes[rows], table.symbols, probs)
    report = score_predictions(preds, table, cfg)
    assert report["scored"] == int(known.sum()) and report["predictions"] == len(rows)
    expected = float(np.mean(calls[known] == labels[rows][known]))
    assert report["accuracy"] == pytest.approx(expected)
    assert np.array(report["confusion_matrix"]).sum() == known.sum()
