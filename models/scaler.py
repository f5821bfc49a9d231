"""StandardScaler for feature rows, fitted on the training period only, stored without pickle.

Matches scikit-learn's StandardScaler (population variance, a zero scale replaced by 1) so a
seed ``scaler.pkl`` imports to the same numbers. Stored as JSON (in checkpoints: as tensors) —
a pickle can execute code when loaded, a list of floats cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelError


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray  # float64[n_features]
    scale: np.ndarray  # float64[n_features], never 0
    n_samples: int

    def __post_init__(self) -> None:
        if self.mean.shape != self.scale.shape or self.mean.ndim != 1:
            raise ModelError(
                f"scaler: mean {self.mean.shape} and scale {self.scale.shape} must be equal 1-D"
            )
        if not (np.isfinite(self.mean).all() and np.isfinite(self.scale).all()):
            raise ModelError("scaler: mean and scale must be finite")
        if (self.scale <= 0).any():
            raise ModelError(f"scaler: scale must be > 0 (feature {int(np.argmin(self.scale))})")

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(x - mean) / scale`` over the last axis."""
        return ((x - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "n_samples": int(self.n_samples),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scaler:
        try:
            return cls(
                mean=np.asarray(raw["mean"], dtype=np.float64),
                scale=np.asarray(raw["scale"], dtype=np.float64),
                n_samples=int(raw.get("n_samples", 0)),
            )
        except KeyError as exc:
            raise ModelError(f"scaler: missing field {exc.args[0]!r}") from None

    def save(self, path: str | Path) -> None:
        """``.json`` or ``.npz`` by suffix."""
        path = Path(path)
        if path.suffix == ".npz":
            np.savez(path, mean=self.mean, scale=self.scale, n_samples=np.int64(self.n_samples))
        else:
            path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        path = Path(path)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    return cls(data["mean"], data["scale"], int(data["n_samples"]))
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            if isinstance(exc, ModelError):
                raise ModelError(f"{path}: {exc}") from None
            raise ModelError(f"{path}: not a scaler file ({type(exc).__name__}: {exc})") from None


def fit_scaler(values: np.ndarray, rows: np.ndarray, chunk: int = 1 << 16) -> Scaler:
    """Fit on ``values[rows]`` (boolean mask) in chunks, without copying the selected rows.

    Chunked sums are combined with Chan's parallel-variance formula in float64, so a 2.5 GB
    table is fitted in one pass at a few MB of extra memory.
    """
    if rows.dtype != bool or len(rows) != len(values):
        raise ModelError("fit_scaler: rows must be a boolean mask over the table's rows")
    n_features = values.shape[1]
    count = 0
    mean = np.zeros(n_features)
    m2 = np.zeros(n_features)
    for start in range(0, len(values), chunk):
        block = values[start : start + chunk][rows[start : start + chunk]].astype(np.float64)
        k = len(block)
        if k == 0:
            continue
        b_mean = block.mean(axis=0)
        b_m2 = ((block - b_mean) ** 2).sum(axis=0)
        delta = b_mean - mean
        total = count + k
        mean = mean + delta * (k / total)
        m2 = m2 + b_m2 + delta**2 * (count * k / total)
        count = total
    if count == 0:
        raise ModelError("fit_scaler: no training rows to fit on")
    std = np.sqrt(m2 / count)
    scale = np.where(std > np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return Scaler(mean=mean, scale=scale, n_samples=count)
