"""Live inference: per-symbol ring buffers of feature rows and one batched forward pass.

Each bar writes one row per symbol into a preallocated ``[symbols, window, features]`` ring (no
shifting, no re-copy of the other 59 rows); at predict time the windows of all ready symbols are
read out with one fancy-index gather, oldest row first, and go through the network(s) in a
single batch under ``torch.inference_mode``. An ensemble averages the class probabilities of
several checkpoints trained on the same feature spec.

``precision="bf16"`` runs the network under CPU/GPU autocast to bfloat16: on a 2-core AVX-512
machine it roughly halves the LSTM's time; the logit deviation from fp32 is measured by
``bench/bench_model_inference.py`` and reported in docs/model.md. Where the CPU cannot run a
bf16 LSTM (``models.precision``), asking for it is refused when the predictor is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.events import FeatureSlice
from models.checkpoint import CURRENT, ModelBundle, _Current, load_bundle
from models.errors import ModelError
from models.network import CLASS_NAMES
from models.precision import require_precision


class FeatureRing:
    """Per-symbol ring buffers of the last ``window`` feature rows, indexed by universe sid."""

    buf: np.ndarray  # float32[capacity, window, n_features]
    head: np.ndarray  # int64[capacity]: slot the next row goes to (= oldest row once full)
    count: np.ndarray  # int64[capacity]: consecutive ready rows, capped at window

    def __init__(self, window: int, n_features: int, capacity: int = 128) -> None:
        self.window = window
        self.n_features = n_features
        self._alloc(max(1, capacity))
        self._offsets = np.arange(window, dtype=np.int64)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "buf", None)
        buf = np.zeros((capacity, self.window, self.n_features), dtype=np.float32)
        head = np.zeros(capacity, dtype=np.int64)
        count = np.zeros(capacity, dtype=np.int64)
        if old is not None:
            n = old.shape[0]
            buf[:n], head[:n], count[:n] = old, self.head, self.count
        self.buf, self.head, self.count = buf, head, count

    @property
    def capacity(self) -> int:
        return int(self.buf.shape[0])

    def push(self, sid: np.ndarray, values: np.ndarray, ready: np.ndarray) -> None:
        """Write one row per sid (sids distinct); a row not ready restarts that symbol's count."""
        if len(sid) == 0:
            return
        need = int(sid.max()) + 1
        if need > self.capacity:
            self._alloc(max(need, 2 * self.capacity))
        slot = self.head[sid]
        self.buf[sid, slot] = values
        self.head[sid] = (slot + 1) % self.window
        self.count[sid] = np.where(ready, np.minimum(self.count[sid] + 1, self.window), 0)

    def reset(self, sid: np.ndarray) -> None:
        """Forget the rows of these symbols (a new session when windows must not span two)."""
        sid = sid[sid < self.capacity]
        self.count[sid] = 0

    def full(self, sid: np.ndarray) -> np.ndarray:
        """Mask of sids whose last ``window`` rows are all ready."""
        out = np.zeros(len(sid), dtype=bool)
        inside = sid < self.capacity
        out[inside] = self.count[sid[inside]] >= self.window
        return out

    def windows(self, sid: np.ndarray) -> np.ndarray:
        """float32 ``[len(sid), window, n_features]``, oldest row first — one gather."""
        idx = (self.head[sid][:, None] + self._offsets[None, :]) % self.window
        return self.buf[sid[:, None], idx]


BF16_BUCKET = 16  # bf16 CPU batches are padded to a multiple of this many windows


class Predictor:
    """One or more models (same feature spec and window) → averaged class probabilities."""

    def __init__(
        self,
        bundles: Sequence[ModelBundle],
        device: str = "cpu",
        num_threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        if not bundles:
            raise ModelError("predictor: no models given")
        first = bundles[0]
        for other in bundles[1:]:
            for what, a, b in (
                ("feature spec hash", first.spec_hash, other.spec_hash),
                ("window", first.config.window, other.config.window),
                ("feature count", first.config.n_features, other.config.n_features),
                ("cross_sessions", first.cross_sessions, other.cross_sessions),
            ):
                if a != b:
                    raise ModelError(f"ensemble models differ in {what}: {a} vs {b}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError("device cuda was asked for but CUDA is not available here")
        if device not in {"cpu", "cuda"}:
            raise ModelError(f"device {device!r} must be cpu or cuda")
        require_precision(precision, device)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.bundles = list(bundles)
        self.device = torch.device(device)
        self.precision = precision
        self.window = first.config.window
        self.n_features = first.config.n_features
        self.spec_hash = first.spec_hash
        self.cross_sessions = first.cross_sessions
        self._models = [b.model.to(self.device).eval() for b in bundles]
        self._mean = [
            torch.tensor(b.scaler.mean, dtype=torch.float32, device=self.device) for b in bundles
        ]
        self._inv = [
            torch.tensor(1.0 / b.scaler.scale, dtype=torch.float32, device=self.device)
            for b in bundles
        ]

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | Path],
        expected_spec_hash: str | _Current | None = CURRENT,
        device: str = "cpu",
        num_threads: int | None = None,
        precision: str = "fp32",
    ) -> Predictor:
        bundles = [load_bundle(p, expected_spec_hash) for p in paths]
        return cls(bundles, device=device, num_threads=num_threads, precision=precision)

    def identity(self) -> dict[str, Any]:
        """What a run stores about the model(s): ensemble hash, member hashes, precision."""
        return {
            "model_hash": self.model_hash,
            "members": [b.model_hash for b in self.bundles],
            "precision": self.precision,
        }

    @property
    def model_hash(self) -> str:
        """Identity of the ensemble (ordered member hashes + precision), keys prediction caches."""
        digest = hashlib.sha256(self.precision.encode())
        for bundle in self.bundles:
            digest.update(bundle.model_hash.encode())
        return digest.hexdigest()

    def logits(self, windows: np.ndarray) -> list[torch.Tensor]:
        """Raw (unscaled) windows ``[B, window, F]`` → per-model fp32 logits (for diagnostics)."""
        if windows.ndim != 3 or windows.shape[1:] != (self.window, self.n_features):
            raise ModelError(
                f"predictor expects windows [batch, {self.window}, {self.n_features}], "
                f"got {tuple(windows.shape)}"
            )
        batch = len(windows)
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        padded = self.padded_batch(batch)
        if padded != batch:  # zero rows, sliced off below: only the batch shape changes
            x = torch.cat([x, x.new_zeros((padded - batch, *x.shape[1:]))])
        out = []
        with (
            torch.inference_mode(),
            torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
            ),
        ):
            for model, mean, inv in zip(self._models, self._mean, self._inv, strict=True):
                out.append(model((x - mean) * inv).float()[:batch])
        return out

    def padded_batch(self, batch: int) -> int:
        """bf16 on the CPU: batches are padded to a multiple of ``BF16_BUCKET`` windows. oneDNN
        builds bf16 kernels per input shape on first use (seconds), so a live universe whose
        number of ready symbols changes would otherwise pay that again and again; with buckets
        a start-up pass per bucket (``warm_up``) pays it once. fp32 runs unpadded."""
        if self.precision != "bf16" or self.device.type != "cpu" or batch == 0:
            return batch
        return -(-batch // BF16_BUCKET) * BF16_BUCKET

    def warm_up(self, max_batch: int) -> None:
        """One throwaway forward pass per batch shape up to ``max_batch`` windows, so the first
        live decisions do not pay the kernel libraries' lazy set-up."""
        sizes = sorted({self.padded_batch(n) for n in range(1, max_batch + 1)})
        if self.precision != "bf16" or self.device.type != "cpu":
            sizes = [max_batch]
        for size in sizes:
            self.predict(np.zeros((size, self.window, self.n_features), np.float32))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Averaged probabilities ``[B, 3]`` (float64; columns SELL, HOLD, BUY)."""
        if len(windows) == 0:
            return np.zeros((0, len(CLASS_NAMES)))
        with torch.inference_mode():
            probs = [torch.softmax(z, dim=1) for z in self.logits(windows)]
            mean = torch.stack(probs).mean(dim=0)
        return mean.cpu().numpy().astype(np.float64)


#: windows in the start-up forward pass (a 97-symbol universe fits)
WARM_BATCH = 128


class OnlinePredictor:
    """Feature slices in, probabilities for the symbols whose window is complete out: the
    ``PredictorPort`` of paper and live sessions (and of a bar-by-bar replay)."""

    def __init__(self, predictor: Predictor, capacity: int = 128) -> None:
        self.predictor = predictor
        self.spec_hash = predictor.spec_hash
        self.ring = FeatureRing(predictor.window, predictor.n_features, capacity)

    def identity(self) -> dict[str, Any]:
        return self.predictor.identity()

    def start(self) -> None:
        """One throwaway forward pass per batch shape, so the first live decision does not pay
        for the kernel libraries' lazy set-up (seconds on a CPU, measured as a p99 outlier)."""
        self.predictor.warm_up(WARM_BATCH)

    def probabilities(
        self, features: FeatureSlice, session_open: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.update(features.sid, features.values, features.ready, session_open)

    def update(
        self,
        sid: np.ndarray,
        values: np.ndarray,
        ready: np.ndarray,
        session_open: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Push one slice; returns (positions in the slice that were predicted, probabilities)."""
        if values.shape[1] != self.predictor.n_features:
            raise ModelError(
                f"feature slice has {values.shape[1]} features, the model takes "
                f"{self.predictor.n_features}"
            )
        if session_open is not None and not self.predictor.cross_sessions:
            self.ring.reset(sid[session_open])
        self.ring.push(sid, values, ready)
        positions = np.flatnonzero(self.ring.full(sid))
        if len(positions) == 0:
            return positions, np.zeros((0, len(CLASS_NAMES)))
        return positions, self.predictor.predict(self.ring.windows(sid[positions]))
