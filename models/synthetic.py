"""Synthetic feature tables: random-walk prices with features that carry a little signal.

For tests and benchmarks that need a ``FeatureTable`` of a given shape without the feature
calculator or real data. Not used by training on real data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from config.sessions import IST_OFFSET_NS, NS_PER_MINUTE, NSE
from models.dataset import FeatureTable

SESSION_START_MINUTE_UTC = NSE.open_minute - IST_OFFSET_NS // NS_PER_MINUTE  # 03:45 = 09:15 IST


def synthetic_table(
    n_symbols: int = 3,
    days: int = 10,
    bars_per_day: int = 75,
    n_features: int = 12,
    interval_minutes: int = 5,
    warmup: int = 5,
    seed: int = 0,
    spec_hash: str = "synthetic-spec",
    start: str = "2021-01-04",
) -> FeatureTable:
    """``n_symbols`` × ``days`` sessions of ``bars_per_day`` bars; first ``warmup`` rows not ready.

    Feature 0 is the last one-bar return, feature 1 a noisy view of the *next* bars' drift (so a
    model can learn something), the rest noise.
    """
    rng = np.random.default_rng(seed)
    day0 = pd.Timestamp(start, tz="UTC").value
    day_ns = 86_400_000_000_000
    bar_ns = interval_minutes * 60_000_000_000
    session_ts = np.array(
        [
            day0 + d * day_ns + SESSION_START_MINUTE_UTC * 60_000_000_000 + b * bar_ns
            for d in range(days)
            for b in range(bars_per_day)
        ],
        dtype=np.int64,
    )
    per_symbol = len(session_ts)
    n = n_symbols * per_symbol
    ts = np.tile(session_ts, n_symbols)
    codes = np.repeat(np.arange(n_symbols, dtype=np.int32), per_symbol)
    drift = np.repeat(rng.normal(0, 0.0008, size=n // 6 + 1), 6)[:n]
    rets = drift + rng.normal(0, 0.001, size=n)
    close = np.empty(n)
    for s in range(n_symbols):
        sl = slice(s * per_symbol, (s + 1) * per_symbol)
        close[sl] = 100.0 * (1 + s) * np.exp(np.cumsum(rets[sl]))
    values = rng.normal(0, 1, size=(n, n_features)).astype(np.float32)
    values[:, 0] = (rets * 1000).astype(np.float32)
    if n_features > 1:
        ahead = np.concatenate([drift[1:], [0.0]])
        values[:, 1] = (ahead * 1000 + rng.normal(0, 0.5, size=n)).astype(np.float32)
    values += np.linspace(0, 3, n_features, dtype=np.float32)  # offsets so scaling matters
    ready = np.ones(n, dtype=bool)
    for s in range(n_symbols):
        ready[s * per_symbol : s * per_symbol + warmup] = False
        values[s * per_symbol : s * per_symbol + warmup] = np.nan
    return FeatureTable(
        ts_ns=ts,
        symbol_codes=codes,
        symbols=tuple(f"SYM{s}" for s in range(n_symbols)),
        values=np.ascontiguousarray(values),
        ready=ready,
        spec_hash=spec_hash,
        feature_names=tuple(f"f{i}" for i in range(n_features)),
        close=close,
    )
