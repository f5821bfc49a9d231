"""Classification metrics shared by training, baselines and backtest reports.

Per-class accuracy is recall per true class (of the bars that really were BUY, the fraction
called BUY): with imbalanced classes plain accuracy flatters a model that always says HOLD,
which is why the majority-class baseline is reported next to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.network import CLASS_NAMES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """``[true, predicted]`` counts."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return out


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, per-class accuracy, balanced accuracy and the confusion matrix (plain types)."""
    return report_from_confusion(confusion_matrix(y_true, y_pred, len(CLASS_NAMES)))


def report_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """``classification_report`` from a ``[true, predicted]`` count matrix (so reports of
    several periods pool by adding their matrices)."""
    cm = np.asarray(cm, dtype=np.int64)
    support = cm.sum(axis=1)
    per_class = {
        name: (float(cm[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(CLASS_NAMES)
    }
    present = [v for v in per_class.values() if v is not None]
    total = int(cm.sum())
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_accuracy": per_class,
        "support": {name: int(support[i]) for i, name in enumerate(CLASS_NAMES)},
        "confusion_matrix": cm.tolist(),
    }


def majority_baseline(train_labels: np.ndarray, val_labels: np.ndarray) -> dict[str, Any]:
    """Always predict the most frequent training class; scored on validation."""
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=len(CLASS_NAMES))
    majority = int(np.argmax(counts))
    report = classification_report(val_labels, np.full(len(val_labels), majority))
    report["class"] = CLASS_NAMES[majority]
    return report
