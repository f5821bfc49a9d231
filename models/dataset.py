"""Feature rows → training windows, built lazily by index.

A ``FeatureTable`` holds every feature row once, as one contiguous float32 matrix sorted by
(symbol, time). A training sample is only an *end row*: the window is the ``window`` rows up to
and including it, gathered when a batch is drawn. The seed's 7M samples × 60 × 89 would be
150 GB as a tensor; as a table they are 7M × 89 × 4 bytes = 2.5 GB plus one int64 per sample.

A window never spans two symbols, never contains a row whose features are still warming up
(``ready`` false), and spans two sessions only when ``cross_sessions`` (the seed's windows did:
~72 samples per symbol-day means they ran over the overnight gap; a 60-bar window inside one
75-bar session would leave 16).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from config.sessions import IST, IST_ZONE_NAME, epoch_ns, local_days
from models.errors import DatasetError
from models.labels import UNLABELED

TS_COLUMN = "ts"
SYMBOL_COLUMN = "symbol"
READY_COLUMN = "ready"
CLOSE_COLUMN = "close"


@dataclass
class FeatureTable:
    """Feature rows of many symbols, sorted by (symbol, ts); one contiguous float32 matrix."""

    ts_ns: np.ndarray  # int64[n] UTC epoch ns of each bar's start
    symbol_codes: np.ndarray  # int32[n] index into ``symbols``
    symbols: tuple[str, ...]
    values: np.ndarray  # float32[n, n_features], C-contiguous
    ready: np.ndarray  # bool[n]: every feature past warm-up
    spec_hash: str
    feature_names: tuple[str, ...]
    close: np.ndarray | None = None  # float64[n], needed for labels only

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    @property
    def session_ids(self) -> np.ndarray:
        """IST calendar day of each row: rows of one symbol with equal ids share a session."""
        return local_days(self.ts_ns)

    def validate(self) -> None:
        """Refuse layouts the window arithmetic depends on, naming the first offending row."""
        n = len(self.ts_ns)
        if self.values.ndim != 2 or self.values.shape[0] != n:
            raise DatasetError(
                f"feature table: values shape {self.values.shape} does not match {n} rows"
            )
        if self.values.dtype != np.float32 or not self.values.flags.c_contiguous:
            raise DatasetError("feature table: values must be one C-contiguous float32 matrix")
        if len(self.feature_names) != self.values.shape[1]:
            raise DatasetError(
                f"feature table: {len(self.feature_names)} feature names for "
                f"{self.values.shape[1]} columns"
            )
        for name, arr in (("symbol_codes", self.symbol_codes), ("ready", self.ready)):
            if len(arr) != n:
                raise DatasetError(f"feature table: {name} has {len(arr)} rows, expected {n}")
        if self.close is not None and len(self.close) != n:
            raise DatasetError(f"feature table: close has {len(self.close)} rows, expected {n}")
        if n > 1:
            code_step = np.diff(self.symbol_codes.astype(np.int64))
            ts_step = np.diff(self.ts_ns)
            bad = np.flatnonzero((code_step < 0) | ((code_step == 0) & (ts_step <= 0)))
            if len(bad):
                row = int(bad[0]) + 1
                raise DatasetError(
                    f"feature table: row {row} ({self.symbols[self.symbol_codes[row]]}, "
                    f"{pd.Timestamp(int(self.ts_ns[row]), tz='UTC')}) is out of (symbol, ts) "
                    "order or duplicated"
                )
        self._check_finite()

    def _check_finite(self, chunk: int = 1 << 16) -> None:
        for start in range(0, len(self.ts_ns), chunk):
            block = self.values[start : start + chunk]
            bad_rows = np.flatnonzero(
                self.ready[start : start + chunk] & ~np.isfinite(block).all(axis=1)
            )
            if len(bad_rows):
                row = start + int(bad_rows[0])
                col = int(np.flatnonzero(~np.isfinite(self.values[row]))[0])
                raise DatasetError(
                    f"feature table: row {row} ({self.symbols[self.symbol_codes[row]]}, "
                    f"{pd.Timestamp(int(self.ts_ns[row]), tz='UTC')}) is marked ready but "
                    f"feature {self.feature_names[col]!r} is {self.values[row, col]}"
                )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        feature_names: Sequence[str],
        spec_hash: str,
        close: np.ndarray | None = None,
    ) -> FeatureTable:
        """Long frame ``ts, symbol, <features>[, ready][, close]`` → table (sorted, float32).

        Without a ``ready`` column a row is ready when all its features are finite.
        """
        missing = [c for c in (TS_COLUMN, SYMBOL_COLUMN, *feature_names) if c not in frame]
        if missing:
            raise DatasetError(f"feature frame: missing columns {missing[:5]}")
        order = np.lexsort((_ts_ns(frame[TS_COLUMN]), frame[SYMBOL_COLUMN].to_numpy()))
        if not np.array_equal(order, np.arange(len(order))):
            frame = frame.iloc[order]  # copy only when the rows are not already in order
        codes, uniques = pd.factorize(frame[SYMBOL_COLUMN], sort=True)
        values = np.ascontiguousarray(frame[list(feature_names)].to_numpy(dtype=np.float32))
        if READY_COLUMN in frame:
            ready = frame[READY_COLUMN].to_numpy(dtype=bool)
        else:
            ready = np.isfinite(values).all(axis=1)
        if close is None and CLOSE_COLUMN in frame and CLOSE_COLUMN not in feature_names:
            close = frame[CLOSE_COLUMN].to_numpy(dtype=np.float64)
        elif close is not None:
            close = np.asarray(close, dtype=np.float64)[order]
        return cls(
            ts_ns=_ts_ns(frame[TS_COLUMN]),
            symbol_codes=codes.astype(np.int32),
            symbols=tuple(str(s) for s in uniques),
            values=values,
            ready=ready,
            spec_hash=spec_hash,
            feature_names=tuple(feature_names),
            close=close,
        )

    def select(self, keep: np.ndarray) -> FeatureTable:
        """The rows where ``keep`` is true (order kept): e.g. a fold's training rows up to its
        purge gap."""
        return FeatureTable(
            ts_ns=self.ts_ns[keep], symbol_codes=self.symbol_codes[keep], symbols=self.symbols,
            values=np.ascontiguousarray(self.values[keep]), ready=self.ready[keep],
            spec_hash=self.spec_hash, feature_names=self.feature_names,
            close=None if self.close is None else self.close[keep],
        )  # fmt: skip

    def fingerprint(self) -> str:
        """Content hash of the rows (keys prediction caches): any changed value changes it."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.spec_hash.encode())
        digest.update("\x1f".join(self.symbols).encode())
        for arr in (self.ts_ns, self.symbol_codes, self.ready):
            digest.update(np.ascontiguousarray(arr).tobytes())
        step = 1 << 16
        for start in range(0, len(self.values), step):
            digest.update(self.values[start : start + step].tobytes())
        return digest.hexdigest()


def _ts_ns(ts: pd.Series) -> np.ndarray:
    """Timestamps (tz-aware or epoch ns ints) → int64 UTC epoch ns."""
    if pd.api.types.is_integer_dtype(ts.dtype):
        return ts.to_numpy(dtype=np.int64)
    if getattr(ts.dt, "tz", None) is None:
        raise DatasetError(f"feature frame: ts must be tz-aware ({IST_ZONE_NAME}) or epoch ns")
    return epoch_ns(ts)


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Per row, the first row index of its run of equal consecutive ``keys``."""
    n = len(keys)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(is_start)
    return starts[np.cumsum(is_start) - 1]


def window_ends(
    table: FeatureTable,
    window: int,
    cross_sessions: bool = True,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Rows that can end a window: ``window`` rows of one symbol (and session), all ready.

    With ``labels``, only rows that carry a label. Sorted ascending (symbol, then time).
    """
    n = len(table)
    if n < window:
        return np.zeros(0, dtype=np.int64)
    run_start = _run_starts(table.symbol_codes)
    if not cross_sessions:
        key = table.symbol_codes.astype(np.int64) * 1_000_000 + table.session_ids
        run_start = _run_starts(key)
    rows = np.arange(window - 1, n, dtype=np.int64)
    first = rows - (window - 1)
    not_ready = np.concatenate([[0], np.cumsum(~table.ready, dtype=np.int64)])
    ok = (first >= run_start[rows]) & (not_ready[rows + 1] - not_ready[first] == 0)
    if labels is not None:
        ok &= labels[rows] != UNLABELED
    return rows[ok]


def subsample(ends: np.ndarray, max_windows: int | None) -> np.ndarray:
    """At most ``max_windows`` ends, evenly spaced so every symbol and period stays covered."""
    if max_windows is None or len(ends) <= max_windows:
        return ends
    if max_windows < 1:
        raise DatasetError(f"max_windows must be ≥ 1, got {max_windows}")
    pick = np.unique(np.linspace(0, len(ends) - 1, max_windows).round().astype(np.int64))
    return ends[pick]


@dataclass(frozen=True)
class Split:
    """Time-based train / validation / test split of window ends, purged and gapped at each cut.

    Validation chooses the checkpoint (early stopping), so it is part of what the model was fitted
    to; only the test period, scored once at the end, says how the chosen model does on data that
    played no part in choosing it."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    cut_ts_ns: int  # first timestamp of the validation period
    test_cut_ts_ns: int  # first timestamp of the test period
    gap_bars: int
    horizon: int

    def describe(self) -> dict[str, object]:
        return {
            "train_windows": len(self.train),
            "val_windows": len(self.val),
            "test_windows": len(self.test),
            "cut": _ist(self.cut_ts_ns),
            "test_cut": _ist(self.test_cut_ts_ns),
            "gap_bars": self.gap_bars,
            "horizon": self.horizon,
        }


def _ist(ts_ns: int) -> str:
    return str(pd.Timestamp(ts_ns, tz="UTC").tz_convert(IST))


def _first_rows_at(table: FeatureTable, cut: int) -> np.ndarray:
    """Per symbol code, the first row at or after ``cut`` (the symbol's end row if none)."""
    bounds = np.searchsorted(table.symbol_codes, np.arange(len(table.symbols) + 1))
    first = np.empty(len(table.symbols), dtype=np.int64)
    for code in range(len(table.symbols)):
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        first[code] = lo + int(np.searchsorted(table.ts_ns[lo:hi], cut))
    return first


def purge_gap(horizon: int, gap_bars: int | None = None) -> int:
    """Bars between the last labelled row of one period and the first row of the next: at least
    the label horizon (a label looks ``horizon`` bars ahead), more when ``gap_bars`` asks. One
    rule for the train/validation/test cuts and for walk-forward folds (``models.folds``)."""
    return max(horizon, gap_bars if gap_bars is not None else horizon)


def time_split(
    table: FeatureTable,
    ends: np.ndarray,
    horizon: int,
    train_frac: float = 0.7,
    val_frac: float = 0.15,
    gap_bars: int | None = None,
) -> Split:
    """Split by timestamp into train / validation / test (the rest, ``1 - train - val``).

    Two cuts, each the same instant for every symbol: the end time below which ``train_frac`` of
    windows end, and the one below which ``train_frac + val_frac`` do. At each cut the windows
    before it whose label reaches it (``ts[e + horizon] ≥ cut``) are purged, and each symbol's
    windows after it start ``gap_bars`` (≥ ``horizon``) rows after its first row at the cut, so
    no label of one part overlaps the bars of the next. Windows may still *contain* feature rows
    of the part before (inputs, not labels).
    """
    if not (train_frac > 0.0 and val_frac > 0.0 and train_frac + val_frac < 1.0):
        raise DatasetError(
            f"train_frac ({train_frac}) and val_frac ({val_frac}) must be > 0 and leave a test "
            "period (sum < 1)"
        )
    gap = purge_gap(horizon, gap_bars)
    if len(ends) < 3:
        raise DatasetError(f"need at least 3 windows to split, have {len(ends)}")
    end_ts = table.ts_ns[ends]
    ordered = np.sort(end_ts)
    last = len(ends) - 1
    cut = int(ordered[min(last, int(train_frac * len(ends)))])
    test_cut = int(ordered[min(last, int((train_frac + val_frac) * len(ends)))])
    target = np.minimum(ends + horizon, len(table) - 1)
    label_ts = table.ts_ns[target]
    same_symbol = table.symbol_codes[target] == table.symbol_codes[ends]
    codes = table.symbol_codes[ends]
    after_cut = ends >= _first_rows_at(table, cut)[codes] + gap
    after_test_cut = ends >= _first_rows_at(table, test_cut)[codes] + gap
    train = ends[(end_ts < cut) & same_symbol & (label_ts < cut)]
    val = ends[
        (end_ts >= cut) & after_cut & (end_ts < test_cut) & same_symbol & (label_ts < test_cut)
    ]
    test = ends[(end_ts >= test_cut) & after_test_cut]
    if len(train) == 0 or len(val) == 0 or len(test) == 0:
        raise DatasetError(
            f"time split left {len(train)} training, {len(val)} validation and {len(test)} test "
            f"windows (of {len(ends)}); need more data or other train_frac / val_frac"
        )
    return Split(train, val, test, cut, test_cut, gap, horizon)


def covered_rows(n_rows: int, ends: np.ndarray, window: int) -> np.ndarray:
    """Boolean mask of rows inside any of the windows ending at ``ends``."""
    marks = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(marks, ends - (window - 1), 1)
    np.add.at(marks, ends + 1, -1)
    return np.cumsum(marks[:-1]) > 0


class WindowSet:
    """Windows ending at ``ends``, gathered and scaled one batch at a time."""

    def __init__(
        self,
        table: FeatureTable,
        ends: np.ndarray,
        window: int,
        labels: np.ndarray | None = None,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> None:
        self.table = table
        self.ends = np.asarray(ends, dtype=np.int64)
        self.window = window
        self.labels = labels
        self._offsets = np.arange(-(window - 1), 1, dtype=np.int64)
        self._mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self._inv = None if scale is None else (1.0 / np.asarray(scale, dtype=np.float64))
        if self._inv is not None:
            self._inv = self._inv.astype(np.float32)

    def __len__(self) -> int:
        return len(self.ends)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """float32 ``[len(positions), window, n_features]``: one fancy-index copy, then scaled."""
        rows = self.ends[positions][:, None] + self._offsets[None, :]
        x = self.table.values[rows]
        if self._mean is not None:
            x -= self._mean
        if self._inv is not None:
            x *= self._inv
        return x

    def batch(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.from_numpy(self.gather(positions))
        if self.labels is None:
            return x, None
        y = torch.from_numpy(self.labels[self.ends[positions]].astype(np.int64))
        return x, y

    def iter_batches(
        self, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        order = np.arange(len(self.ends))
        if shuffle:
            if rng is None:
                raise ValueError("shuffle needs an rng so runs stay deterministic")
            order = rng.permutation(order)
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self.ends) // batch_size)
