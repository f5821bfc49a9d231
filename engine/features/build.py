"""Feature files: the history of every symbol pushed through the streaming kernels, on disk.

A feature file is Parquet with columns ts, symbol and the 89 float32 features (NaN during each
feature's warm-up; a row is *ready* exactly when none of its features is NaN). The schema
metadata records the spec hash and version, and ``read_features`` refuses a file written under
another spec, so a model can never be trained or served on features it does not know.

Writing goes symbol by symbol through one ``ParquetWriter`` (one row group per symbol), so the
output side holds one symbol's matrix at a time however many bars the file gets.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from config.sessions import IST, IST_ZONE_NAME, SessionTimes
from engine.features.calculator import REQUIRED_COLUMNS, FeatureInputError, history_arrays
from engine.features.spec import (
    FEATURE_NAMES,
    N_FEATURES,
    SPEC_HASH,
    SPEC_VERSION,
    SpecMismatchError,
)

META_HASH = b"feature_spec_hash"
META_VERSION = b"feature_spec_version"
META_NAMES = b"feature_names"


def feature_schema() -> pa.Schema:
    fields = [
        pa.field("ts", pa.timestamp("ns", tz=IST_ZONE_NAME)),
        pa.field("symbol", pa.string()),
    ]
    fields += [pa.field(name, pa.float32()) for name in FEATURE_NAMES]
    return pa.schema(fields).with_metadata(
        {
            META_HASH: SPEC_HASH.encode(),
            META_VERSION: SPEC_VERSION.encode(),
            META_NAMES: ",".join(FEATURE_NAMES).encode(),
        }
    )


@dataclass
class BuildReport:
    path: Path
    symbols: int
    bars: int
    ready_bars: int
    seconds: float

    def __str__(self) -> str:
        rate = self.bars / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"{self.path}: {self.bars:,} bars ({self.ready_bars:,} ready) for {self.symbols} "
            f"symbol(s), {N_FEATURES} features, spec {SPEC_HASH[:12]} v{SPEC_VERSION}; "
            f"{self.seconds:.1f}s ({rate:,.0f} bars/s)"
        )


def split_by_symbol(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """One frame per symbol (sorted by symbol, then ts), as views where possible."""
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise FeatureInputError(f"bar frame lacks column(s): {', '.join(missing)}")
    symbols = frame["symbol"].to_numpy()
    if len(symbols) and not (symbols[1:] >= symbols[:-1]).all():
        frame = frame.sort_values(["symbol", "ts"], kind="stable")
        symbols = frame["symbol"].to_numpy()
    cuts = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
    bounds = np.r_[0, cuts, len(symbols)]
    for start, stop in itertools.pairwise(bounds):
        if stop > start:
            yield frame.iloc[start:stop]


def write_features(
    groups: Iterable[pd.DataFrame], out: str | Path, *, session: SessionTimes
) -> BuildReport:
    """Compute and write the features of each one-symbol bar frame of ``session`` in ``groups``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = feature_schema()
    started = time.perf_counter()
    n_symbols = n_bars = n_ready = 0
    tmp = path.with_name(path.name + ".partial")
    try:
        # float columns do not repeat: dictionary-encoding them only costs time (4x) and space
        with pq.ParquetWriter(tmp, schema, use_dictionary=["symbol"]) as writer:
            for group in groups:
                if group.empty:
                    continue
                bars, values, ready = history_arrays(group, session=session)
                writer.write_table(_to_table(bars, values, schema))
                n_ready += int(ready.sum())
                n_symbols += int(bars["symbol"].nunique())
                n_bars += len(bars)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return BuildReport(path, n_symbols, n_bars, n_ready, time.perf_counter() - started)


def _to_table(bars: pd.DataFrame, values: np.ndarray, schema: pa.Schema) -> pa.Table:
    ts = bars["ts"].dt.tz_convert(IST).astype(f"datetime64[ns, {IST_ZONE_NAME}]")
    columns = np.ascontiguousarray(values.T)  # one copy; each feature column is then zero-copy
    arrays = [pa.array(ts), pa.array(bars["symbol"].astype(str).to_numpy(), pa.string())]
    arrays += [pa.array(columns[j]) for j in range(len(FEATURE_NAMES))]
    return pa.Table.from_arrays(arrays, schema=schema)


def build_from_frame(frame: pd.DataFrame, out: str | Path, *, session: SessionTimes) -> BuildReport:
    """A long bar frame (ts, symbol, OHLCV) of ``session`` → feature file, one symbol at a time."""
    return write_features(split_by_symbol(frame), out, session=session)


def read_features(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a feature file, refusing one written under a different feature spec."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a readable feature file ({exc})") from None
    meta = schema.metadata or {}
    found = meta.get(META_HASH, b"").decode() or "(none recorded)"
    if found != SPEC_HASH:
        version = meta.get(META_VERSION, b"?").decode()
        raise SpecMismatchError(
            str(path),
            found,
            SPEC_HASH,
            f"the file was written under spec v{version}, this calculator is v{SPEC_VERSION}; "
            "rebuild it with `trader features build`",
            against="this calculator's",
        )
    return pq.read_table(path, columns=columns).to_pandas()
