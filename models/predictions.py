"""Backtest predictions computed ahead in large batches and cached on disk.

A model's output at bar t depends only on the features of the window ending at t, so a backtest
can run the network over every window of the feature table at once (batches of thousands, not
one 97-window batch per bar) and look the probabilities up as the replay reaches each bar. The
cache file is keyed by the model (ensemble) hash and the feature data's content fingerprint:
change either and it is recomputed, never reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from engine.events import FeatureSlice
from engine.ports import BUY, SELL
from models.dataset import FeatureTable, WindowSet, window_ends
from models.errors import ModelError, SpecMismatchError
from models.inference import Predictor
from models.labels import UNLABELED, LabelConfig, make_labels
from models.metrics import classification_report


@dataclass
class PredictionTable:
    """Probabilities per (ts, symbol), sorted by (ts, symbol code) for per-slice lookup."""

    ts_ns: np.ndarray  # int64[m]
    symbol_codes: np.ndarray  # int32[m]
    symbols: tuple[str, ...]
    probs: np.ndarray  # float32[m, 3]

    def __post_init__(self) -> None:
        order = np.lexsort((self.symbol_codes, self.ts_ns))
        self.ts_ns = self.ts_ns[order]
        self.symbol_codes = self.symbol_codes[order]
        self.probs = self.probs[order]
        self._code = {s: i for i, s in enumerate(self.symbols)}
        uniq, starts = np.unique(self.ts_ns, return_index=True)
        bounds = np.append(starts, len(self.ts_ns))
        self._rows = {int(t): (int(bounds[i]), int(bounds[i + 1])) for i, t in enumerate(uniq)}

    def __len__(self) -> int:
        return len(self.ts_ns)

    def lookup(self, ts_ns: int, symbols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``symbols`` that have a prediction at ``ts_ns``, float64 probs)."""
        span = self._rows.get(int(ts_ns))
        if span is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.probs.shape[1]))
        lo, hi = span
        codes_here = self.symbol_codes[lo:hi]
        wanted = np.array([self._code.get(s, -1) for s in symbols], dtype=np.int64)
        at = np.searchsorted(codes_here, wanted)
        at_clipped = np.minimum(at, len(codes_here) - 1)
        hit = (wanted >= 0) & (at < len(codes_here)) & (codes_here[at_clipped] == wanted)
        positions = np.flatnonzero(hit)
        return positions, self.probs[lo + at_clipped[hit]].astype(np.float64)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            ts_ns=self.ts_ns,
            symbol_codes=self.symbol_codes,
            symbols=np.array(self.symbols, dtype=np.str_),
            probs=self.probs,
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PredictionTable:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    ts_ns=data["ts_ns"],
                    symbol_codes=data["symbol_codes"],
                    symbols=tuple(str(s) for s in data["symbols"]),
                    probs=data["probs"],
                )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: unreadable prediction cache ({exc})") from None


CPU_BATCH, CUDA_BATCH = 128, 4096  # on CPU small batches stay in cache: 0.56 vs 0.94 ms/window


def predict_table(
    predictor: Predictor,
    table: FeatureTable,
    batch_size: int | None = None,
    progress: bool = False,
) -> PredictionTable:
    """Probabilities for every complete window of ``table`` (same rules as the live ring)."""
    if batch_size is None:
        batch_size = CUDA_BATCH if predictor.device.type == "cuda" else CPU_BATCH
    if table.spec_hash != predictor.spec_hash:
        raise SpecMismatchError("feature data", predictor.spec_hash, table.spec_hash)
    if table.n_features != predictor.n_features:
        raise ModelError(
            f"feature data has {table.n_features} features, the model takes {predictor.n_features}"
        )
    ends = window_ends(table, predictor.window, predictor.cross_sessions)
    windows = WindowSet(table, ends, predictor.window)
    probs = np.zeros((len(ends), 3), dtype=np.float32)
    steps = range(0, len(ends), batch_size)
    for start in tqdm(steps, desc="predict", disable=not progress, leave=False):
        positions = np.arange(start, min(start + batch_size, len(ends)))
        probs[positions] = predictor.predict(windows.gather(positions))
    return PredictionTable(
        ts_ns=table.ts_ns[ends],
        symbol_codes=table.symbol_codes[ends],
        symbols=table.symbols,
        probs=probs,
    )


def cache_path(cache_dir: Path, model_hash: str, data_fingerprint: str) -> Path:
    return cache_dir / f"pred-{model_hash[:24]}-{data_fingerprint[:24]}.npz"


def cached_predictions(
    predictor: Predictor,
    table: FeatureTable,
    cache_dir: str | Path | None,
    batch_size: int | None = None,
    progress: bool = False,
) -> tuple[PredictionTable, bool]:
    """(predictions, whether they came from the cache); computes and stores on a miss."""
    if cache_dir is None:
        return predict_table(predictor, table, batch_size, progress), False
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = cache_path(directory, predictor.model_hash, table.fingerprint())
    if path.exists():
        return PredictionTable.load(path), True
    preds = predict_table(predictor, table, batch_size, progress)
    preds.save(path)
    return preds, False


class PrecomputedPredictor:
    """The ``PredictorPort`` of a replay: every window of the replayed bars predicted ahead in
    large batches (or read back from the cache), then looked up slice by slice. Same numbers
    as the online predictor for the same windows, at a fraction of the cost per bar."""

    def __init__(
        self,
        predictor: Predictor,
        table: FeatureTable,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.predictor = predictor
        self.spec_hash = predictor.spec_hash
        self.table = table
        self.predictions, self.cache_hit = cached_predictions(
            predictor, table, cache_dir, progress=progress
        )

    def identity(self) -> dict[str, Any]:
        return self.predictor.identity()

    def start(self) -> None:
        """Nothing to warm: the network ran before the replay."""

    def probabilities(
        self, features: FeatureSlice, session_open: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.predictions.lookup(features.ts_ns, features.symbols)

    def probability_range(self, entry_threshold: float | None = None) -> dict[str, Any]:
        """What the model actually says on the replayed period (``probability_range``)."""
        return probability_range(self.predictions.probs, entry_threshold)

    def score(self) -> dict[str, Any]:
        """The model's calls over the replayed period against the labels realised in it."""
        label_cfg = self.predictor.bundles[0].label_config
        if label_cfg is None:  # an imported model may not say what it was trained to call
            return {"note": "the model file records no label config"}
        return score_predictions(self.predictions, self.table, label_cfg)


#: the quantiles of P(BUY) and P(SELL) shown with a model's backtest
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def probability_range(probs: np.ndarray, entry_threshold: float | None = None) -> dict[str, Any]:
    """Quantiles of P(BUY) and P(SELL) over every predicted bar of a period, and the share of
    bars where either reaches ``entry_threshold``. Thresholds are compared with these numbers:
    a model whose P(BUY) never passes 0.45 takes no trade at an ``entry_threshold`` of 0.5,
    whatever an example says."""
    out: dict[str, Any] = {"bars": len(probs), "quantiles": list(QUANTILES)}
    for name, column in (("BUY", BUY), ("SELL", SELL)):
        values = probs[:, column].astype(np.float64) if len(probs) else np.zeros(0)
        out[name] = np.quantile(values, QUANTILES).tolist() if len(values) else []
    if entry_threshold is not None:
        reached = (probs[:, BUY] >= entry_threshold) | (probs[:, SELL] >= entry_threshold)
        out["entry_threshold"] = entry_threshold
        out["entry_threshold_reached"] = float(reached.mean()) if len(probs) else 0.0
    return out


def score_predictions(
    preds: PredictionTable, table: FeatureTable, label_cfg: LabelConfig
) -> dict[str, Any]:
    """The model's calls (argmax) against the labels realised in ``table``'s prices.

    For the backtest report: accuracy, per-class accuracy and confusion matrix over the bars
    that have both a prediction and a label (the last ``horizon`` bars of a session have none).
    """
    if table.close is None:
        raise ModelError("scoring predictions needs the close prices of the feature table")
    labels = make_labels(table.close, table.symbol_codes, table.session_ids, label_cfg)
    code_of = {s: i for i, s in enumerate(table.symbols)}
    pred_codes = np.array([code_of.get(preds.symbols[c], -1) for c in preds.symbol_codes])
    bounds = np.searchsorted(table.symbol_codes, np.arange(len(table.symbols) + 1))
    rows = np.full(len(preds), -1, dtype=np.int64)
    for code in range(len(table.symbols)):
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        mine = np.flatnonzero(pred_codes == code)
        at = lo + np.searchsorted(table.ts_ns[lo:hi], preds.ts_ns[mine])
        ok = (at < hi) & (table.ts_ns[np.minimum(at, len(table) - 1)] == preds.ts_ns[mine])
        rows[mine[ok]] = at[ok]
    matched = rows >= 0
    realised = np.full(len(preds), UNLABELED, dtype=np.int8)
    realised[matched] = labels[rows[matched]]
    scored = realised != UNLABELED
    report = classification_report(realised[scored], preds.probs[scored].argmax(axis=1))
    report["scored"] = int(scored.sum())
    report["predictions"] = len(preds)
    return report
