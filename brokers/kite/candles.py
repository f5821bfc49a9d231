"""Kite candle rows → validated frames in the engine's bar format, and their Parquet files.

The engine reads Parquet with columns ``ts`` (timestamp[us, tz=Asia/Kolkata], bar start),
``symbol``, ``open``, ``high``, ``low``, ``close`` (float64) and ``volume`` (int64) — the same
layout as the shared NSE data — so a download is directly usable by a backtest.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from brokers.kite.errors import KiteResponseError
from config.sessions import IST, IST_ZONE_NAME

KITE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz=IST_ZONE_NAME)),
        ("symbol", pa.large_string()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.int64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


class CandleReport(NamedTuple):
    """What validation kept and why it dropped the rest."""

    rows: int
    duplicates: int
    invalid: int


def empty_frame() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()


def candles_to_frame(rows: list[list[Any]], symbol: str, source: str) -> pd.DataFrame:
    """Raw ``[ts, o, h, l, c, v(, oi)]`` rows → frame. Malformed rows raise, naming the row."""
    if not rows:
        return empty_frame()
    for index, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) < 6:
            raise KiteResponseError(f"{source}: candle {index} is not [ts, o, h, l, c, volume]")
    columns = list(zip(*(row[:6] for row in rows), strict=True))
    try:
        ts = pd.to_datetime(pd.Series(columns[0]), format=KITE_TIME_FORMAT)
    except (ValueError, TypeError) as exc:
        raise KiteResponseError(f"{source}: bad candle timestamp ({exc})") from None
    try:
        frame = pd.DataFrame(
            {
                "ts": ts.dt.tz_convert(IST).dt.as_unit("us"),
                "symbol": symbol,
                "open": np.asarray(columns[1], dtype=np.float64),
                "high": np.asarray(columns[2], dtype=np.float64),
                "low": np.asarray(columns[3], dtype=np.float64),
                "close": np.asarray(columns[4], dtype=np.float64),
                "volume": np.asarray(columns[5], dtype=np.float64),
            }
        )
    except (ValueError, TypeError) as exc:
        raise KiteResponseError(f"{source}: non-numeric candle field ({exc})") from None
    return frame


def validate_candles(frame: pd.DataFrame) -> tuple[pd.DataFrame, CandleReport]:
    """Drop insane candles, sort by time, keep the last copy of a duplicated timestamp.

    Sane: prices finite and positive, low ≤ open, close ≤ high, volume a non-negative whole
    number. "Last copy" because chunks are merged in request order, so a later fetch wins.
    """
    o, h, lo, c = (frame[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    v = frame["volume"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (lo > 0)
            & (lo <= np.minimum(o, c))
            & (h >= np.maximum(o, c))
            & np.isfinite(v)
            & (v >= 0)
            & (v == np.floor(v))
        )
    ok &= frame["ts"].notna().to_numpy()
    invalid = int((~ok).sum())
    kept = frame.loc[ok].sort_values("ts", kind="stable")
    before = len(kept)
    kept = kept.drop_duplicates("ts", keep="last").reset_index(drop=True)
    kept["volume"] = kept["volume"].astype(np.int64)
    return kept[list(COLUMNS)], CandleReport(len(kept), before - len(kept), invalid)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a file."""
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_parquet(path: Path) -> pd.DataFrame:
    return pq.read_table(path, schema=SCHEMA).to_pandas()
