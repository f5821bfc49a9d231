"""Where training features come from: bars through the feature calculator, or a features file.

Both end as a ``FeatureTable`` stamped with the feature spec hash, with a close series for the
labels. A features file (``trader features build``) holds no prices, but labels need only
close ratios, and ``logret_lag_0`` is ``100·ln(close[t]/close[t-1])``: its running sum per
symbol gives the closes up to a constant factor, which a ratio cancels. The calculator is
imported lazily so the model package loads (and its tests run) without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.dataset import CLOSE_COLUMN, FeatureTable, _ts_ns
from models.errors import DatasetError

if TYPE_CHECKING:
    from config.sessions import SessionTimes
    from config.settings import DataSettings
    from engine.data.loader import LoadedBars

LOG_RETURN_FEATURE = "logret_lag_0"  # 100 · ln(close[t] / close[t-1])


def _spec() -> tuple[str, tuple[str, ...]]:
    try:
        from engine.features.spec import FEATURE_NAMES, SPEC_HASH
    except ImportError as exc:
        raise DatasetError(f"the feature calculator is not available ({exc})") from None
    return SPEC_HASH, tuple(FEATURE_NAMES)


def closes_from_log_returns(logret_pct: np.ndarray, symbol_codes: np.ndarray) -> np.ndarray:
    """Relative closes per symbol (first bar = 1.0) from percent one-bar log returns."""
    r = np.where(np.isfinite(logret_pct), logret_pct.astype(np.float64) / 100.0, 0.0)
    total = np.cumsum(r)
    n = len(r)
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = symbol_codes[1:] != symbol_codes[:-1]
    starts = np.flatnonzero(first)
    base = (total - r)[starts]  # cumulative sum just before each symbol's first bar
    base_per_row = base[np.cumsum(first) - 1]
    return np.exp(total - base_per_row - r[starts][np.cumsum(first) - 1])


def table_from_features_file(path: str | Path) -> tuple[FeatureTable, int | None]:
    """A feature file (refused by ``read_features`` if written under another spec) → table."""
    from engine.features.build import read_features

    spec_hash, names = _spec()
    frame = read_features(path)
    table = FeatureTable.from_frame(frame, list(names), spec_hash)
    if table.close is None:
        if LOG_RETURN_FEATURE not in names:
            raise DatasetError(
                f"{path}: no close column and no {LOG_RETURN_FEATURE!r} feature to derive "
                "label returns from"
            )
        col = names.index(LOG_RETURN_FEATURE)
        table.close = closes_from_log_returns(table.values[:, col], table.symbol_codes)
    return table, _interval_minutes(table)


def _interval_minutes(table: FeatureTable) -> int | None:
    """The most common step between a symbol's consecutive bars, in minutes."""
    same = table.symbol_codes[1:] == table.symbol_codes[:-1]
    steps = np.diff(table.ts_ns)[same]
    if len(steps) == 0:
        return None
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)] // 60_000_000_000)


def table_from_bars(
    paths: Sequence[str | Path],
    interval: str,
    *,
    session: SessionTimes,
    data: DataSettings | None = None,
    start: date | None = None,
    end: date | None = None,
) -> tuple[FeatureTable, int]:
    """Load bars (validated, resampled, in the ``session`` hours runs use, read by the ``data``
    settings; only the days from ``start`` to ``end`` when given) and run the feature
    calculator on them."""
    from engine.data.loader import load_bars

    loaded = load_bars(list(paths), interval, start, end, session=session, data=data)
    return table_from_loaded_bars(loaded), loaded.interval_minutes


def table_from_loaded_bars(loaded: LoadedBars) -> FeatureTable:
    """Features for bars already loaded (a backtest's ``LoadedBars``), as a table, computed in
    the session hours the bars were loaded in."""
    from engine.features.calculator import history_arrays

    spec_hash, names = _spec()
    bars, values, ready = history_arrays(loaded.frame, session=loaded.session)  # by (symbol, ts)
    codes, symbols = pd.factorize(bars["symbol"], sort=True)
    return FeatureTable(
        ts_ns=_ts_ns(bars["ts"]),
        symbol_codes=codes.astype(np.int32),
        symbols=tuple(str(s) for s in symbols),
        values=np.ascontiguousarray(values, dtype=np.float32),
        ready=np.asarray(ready, dtype=bool),
        spec_hash=spec_hash,
        feature_names=names,
        close=bars[CLOSE_COLUMN].to_numpy(dtype=np.float64),
    )
