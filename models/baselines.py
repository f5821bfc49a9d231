"""The bars a model has to clear, as plain arrays: the majority class and a logistic regression
on the scaled last row of each window.

Fitted once on training rows (``trader train`` and each walk-forward fold) and scored on any
later rows. Stored as an ``.npz`` of arrays (never a pickle), so a walk-forward fold's baseline
fitted where the model was trained is scored where the model is backtested.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelError
from models.metrics import classification_report
from models.network import CLASS_NAMES


@dataclass
class LinearBaseline:
    """Majority class and a fitted multinomial logistic regression (coefficients only)."""

    majority: int  # the most common training label
    coef: np.ndarray  # float64[k, n_features]
    intercept: np.ndarray  # float64[k]
    classes: np.ndarray  # int64[k]
    mean: np.ndarray  # the scaler the model was trained with
    scale: np.ndarray
    fitted_on: int
    converged: bool

    def logistic_predict(self, rows: np.ndarray) -> np.ndarray:
        """Classes for raw (unscaled) feature rows: ``argmax(x·coefᵀ + b)``, as
        ``LogisticRegression.predict`` computes it."""
        x = _scaled(rows, self.mean, self.scale)
        if len(self.classes) == 2:  # sklearn's binary case: one coefficient row
            score = x @ self.coef[0] + self.intercept[0]
            return self.classes[(score > 0).astype(np.int64)]
        return self.classes[np.argmax(x @ self.coef.T + self.intercept, axis=1)]

    def score(self, rows: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """``{"majority": …, "logistic": …}`` classification reports on raw feature ``rows``
        and their realised ``labels``."""
        majority = classification_report(labels, np.full(len(labels), self.majority))
        majority["class"] = CLASS_NAMES[self.majority]
        logistic = classification_report(labels, self.logistic_predict(rows))
        logistic.update(fitted_on=self.fitted_on, converged=self.converged)
        return {"majority": majority, "logistic": logistic}

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp, majority=self.majority, coef=self.coef, intercept=self.intercept,
            classes=self.classes, mean=self.mean, scale=self.scale, fitted_on=self.fitted_on,
            converged=self.converged,
        )  # fmt: skip
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LinearBaseline:
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls(
                    int(d["majority"]), d["coef"], d["intercept"], d["classes"], d["mean"],
                    d["scale"], int(d["fitted_on"]), bool(d["converged"]),
                )  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: unreadable baseline file ({exc})") from None


def fit_baseline(
    rows: np.ndarray, labels: np.ndarray, mean: np.ndarray, scale: np.ndarray, seed: int = 0
) -> LinearBaseline:
    """Fit on raw training feature rows (scaled here with the model's ``mean``/``scale``),
    balanced class weights, as ``trader train`` has always done."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x = _scaled(rows, mean, scale)
    clf = LogisticRegression(max_iter=500, class_weight="balanced", random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x, labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(CLASS_NAMES))
    return LinearBaseline(
        majority=int(np.argmax(counts)), coef=np.asarray(clf.coef_, dtype=np.float64),
        intercept=np.asarray(clf.intercept_, dtype=np.float64),
        classes=np.asarray(clf.classes_, dtype=np.int64), mean=np.asarray(mean, np.float64),
        scale=np.asarray(scale, np.float64), fitted_on=len(labels), converged=converged,
    )  # fmt: skip


def _scaled(rows: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32, as ``Scaler.transform`` feeds the network."""
    return ((np.asarray(rows) - mean) / scale).astype(np.float32)


def describe(report: dict[str, Any]) -> str:
    return f"{report['accuracy']:.3f} (balanced {report['balanced_accuracy']:.3f})"
