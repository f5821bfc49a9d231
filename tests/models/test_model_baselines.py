"""The baselines as arrays: the stored logistic regression predicts what scikit-learn's fitted
model predicts, survives a save/load (no pickle), and the IC is Pearson / Spearman."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from models.baselines import LinearBaseline, fit_baseline
from models.predictions import information_coefficients


@pytest.mark.parametrize("classes", [3, 2])
def test_the_stored_logistic_predicts_as_sklearn_and_round_trips(
    tmp_path: Path, classes: int
) -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(600, 7)).astype(np.float32) * 5 + 2
    labels = (rows[:, 0] + rng.normal(size=600) > 2).astype(np.int64) * (classes - 1)
    if classes == 3:
        labels = np.digitize(rows[:, 0] + rng.normal(size=600), [0.0, 4.0])
    mean, scale = rows.mean(axis=0).astype(np.float64), rows.std(axis=0).astype(np.float64)
    fitted = fit_baseline(rows, labels, mean, scale, seed=0)
    x = ((rows - mean) / scale).astype(np.float32)
    reference = LogisticRegression(max_iter=500, class_weight="balanced", random_state=0)
    reference.fit(x, labels)
    fresh = rng.normal(size=(400, 7)).astype(np.float32) * 5 + 2
    expected = reference.predict(((fresh - mean) / scale).astype(np.float32))
    assert np.array_equal(fitted.logistic_predict(fresh), expected)
    assert fitted.majority == int(np.argmax(np.bincount(labels)))
    fitted.save(tmp_path / "b.npz")
    loaded = LinearBaseline.load(tmp_path / "b.npz")
    assert np.array_equal(loaded.logistic_predict(fresh), expected)
    scored = loaded.score(fresh, expected)
    assert scored["logistic"]["accuracy"] == 1.0 and scored["logistic"]["fitted_on"] == 600


def test_information_coefficients_are_pearson_and_spearman() -> None:
    rng = np.random.default_rng(1)
    signal = rng.normal(size=500)
    realised = 0.3 * signal + rng.normal(size=500)
    ic = information_coefficients(signal, realised)
    frame = pd.DataFrame({"s": signal, "r": realised})
    assert ic["ic"] == pytest.approx(frame.corr().loc["s", "r"], abs=1e-12)
    assert ic["rank_ic"] == pytest.approx(frame.corr(method="spearman").loc["s", "r"], abs=1e-12)
    assert ic["pairs"] == 500
    assert information_coefficients(np.ones(10), realised[:10])["ic"] is None
    assert information_coefficients(signal[:2], realised[:2])["rank_ic"] is None
