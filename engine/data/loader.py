"""Bars in: read Parquet/CSV, validate, keep the session, resample to the run's interval.

The session's hours come from the caller (``settings.session.times``), never from a default
here: the hours that decide which bars are kept and where the resampling buckets start are the
ones the risk gates and the features use.

Outcomes for bad input (also in README "Data input"):
- refused with ``DataError`` naming the file (and row/column): unreadable file, no time column,
  a missing price column, an unparseable timestamp, text in a price or volume column;
- dropped and counted in ``DataQuality``: see ``quality.DROP_REASONS``;
- repaired and noted: see ``quality.NOTE_REASONS``.
Row numbers in messages are 1-based data rows in file order (the CSV header is not counted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import IST, SessionTimes, epoch_ns, local_minutes, parse_interval
from engine.data.quality import DataError, DataQuality

TIME_COLUMNS = ("ts", "timestamp", "date", "datetime", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]
SUFFIXES = {".parquet", ".pq", ".csv", ".txt"}


@dataclass
class LoadedBars:
    """A long frame sorted by (symbol, ts): ts tz-aware IST bar start, OHLC float64, volume.

    ``session`` is the hours the bars were kept and bucketed in, so what is computed from them
    later (features for a model's replay) uses the same hours.
    """

    frame: pd.DataFrame
    quality: DataQuality
    interval_minutes: int
    fingerprint: str
    session: SessionTimes

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].unique().tolist())


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, directories expanded to their bar files (sorted, so runs are stable)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
            if not found:
                raise DataError(f"{path}: directory holds no .parquet or .csv files")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    if not out:
        raise DataError("no data files given")
    return out


def _read_raw(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # the message is what the user sees
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def _first_bad_row(original: pd.Series, parsed: pd.Series) -> int:
    bad = parsed.isna() & original.notna() & (original.astype(str).str.strip() != "")
    return int(np.flatnonzero(bad.to_numpy())[0])


def _parse_times(path: Path | str, column: str, values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(IST)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        if parsed.isna().any():
            row = (
                _first_bad_row(values, parsed)
                if values.notna().all()
                else int(np.flatnonzero(parsed.isna().to_numpy())[0])
            )
            raise DataError(
                f"{path}: row {row + 1}, column {column!r}: timestamp {values.iloc[row]!r} "
                "cannot be parsed"
            )
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert(IST)
    return parsed.dt.tz_localize(IST, ambiguous="raise", nonexistent="raise")


def _numeric(path: Path | str, column: str, values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64")
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna() & (values.astype(str).str.strip().str.lower() != "nan")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 1}, column {column!r}: value {values.iloc[row]!r} is not a number"
        )
    return parsed.astype("float64")


def read_bar_file(path: Path, quality: DataQuality, *, session: SessionTimes) -> pd.DataFrame:
    """One file → validated session bars, sorted by (symbol, ts)."""
    raw = _read_raw(path)
    return validate_bars(
        raw, str(path), quality, session=session, default_symbol=path.stem.split("_")[0]
    )


def validate_bars(
    raw: pd.DataFrame,
    name: str,
    quality: DataQuality,
    *,
    session: SessionTimes,
    default_symbol: str | None = None,
) -> pd.DataFrame:
    """Raw rows (from a file, a download or the synthetic market) → validated session bars.

    ``name`` is what error messages call the source (a file path)."""
    path = name
    quality.files.append(name)
    quality.rows_read += len(raw)
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    time_col = next((c for c in TIME_COLUMNS if c in raw.columns), None)
    if time_col is None:
        raise DataError(
            f"{path}: no time column; expected one of {', '.join(TIME_COLUMNS)}; "
            f"found {', '.join(raw.columns)}"
        )
    missing = [c for c in PRICE_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = pd.DataFrame({"ts": _parse_times(path, time_col, raw[time_col])})
    if "symbol" in raw.columns:
        frame["symbol"] = raw["symbol"].astype(str).str.strip().to_numpy()
    elif default_symbol:
        frame["symbol"] = default_symbol.upper()
    else:
        raise DataError(f"{path}: no symbol column")
    for col in PRICE_COLUMNS:
        frame[col] = _numeric(path, col, raw[col]).to_numpy()
    if "volume" in raw.columns:
        volume = _numeric(path, "volume", raw["volume"])
        quality.note(name, "missing_volume", int(volume.isna().sum()))
        frame["volume"] = volume.fillna(0.0).to_numpy()
    else:
        quality.note(name, "missing_volume", len(frame))
        frame["volume"] = 0.0
    frame["row"] = np.arange(len(frame))

    def drop(mask: pd.Series | np.ndarray, reason: str) -> None:
        nonlocal frame
        mask = np.asarray(mask, dtype=bool)
        quality.drop(name, reason, int(mask.sum()))
        frame = frame[~mask]

    prices = frame[list(PRICE_COLUMNS)]
    drop(prices.isna().any(axis=1), "missing_price")
    drop((frame[list(PRICE_COLUMNS)] <= 0).any(axis=1), "non_positive_price")
    o, h, lo, c = (frame[col].to_numpy() for col in PRICE_COLUMNS)
    drop((h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo), "inconsistent_ohlc")
    drop(frame["volume"].to_numpy() < 0, "negative_volume")
    minutes = local_minutes(epoch_ns(frame["ts"]))
    drop((minutes < session.open_minute) | (minutes >= session.close_minute), "outside_session")

    ts_ns = epoch_ns(frame["ts"])
    unsorted = 0
    for _, idx in frame.groupby("symbol", sort=False).indices.items():
        unsorted += int((np.diff(ts_ns[idx]) < 0).sum())
    quality.note(name, "unsorted_rows", unsorted)
    frame = frame.sort_values(["symbol", "ts", "row"], kind="stable")
    drop(frame.duplicated(["symbol", "ts"], keep="first"), "duplicate_ts")
    return frame.drop(columns="row").reset_index(drop=True)


def resample(frame: pd.DataFrame, minutes: int, *, session: SessionTimes) -> pd.DataFrame:
    """Session-aligned N-minute bars: buckets start at the session's open (for NSE 09:15,
    09:20, ...) — the same grid the live bar feed cuts ticks into."""
    if minutes == 1 or frame.empty:
        return frame
    ts_ns = epoch_ns(frame["ts"])
    minute = local_minutes(ts_ns)
    offset = (minute - session.open_minute) % minutes
    bucket_ns = ts_ns - offset * 60_000_000_000
    work = frame.assign(bucket=bucket_ns)
    grouped = work.groupby(["symbol", "bucket"], sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    ).reset_index()
    out["ts"] = pd.to_datetime(out["bucket"].to_numpy(), utc=True).tz_convert(IST)
    return out[BAR_COLUMNS]


def _fingerprint(paths: list[Path], options: str) -> str:
    digest = hashlib.sha256(options.encode())
    for path in paths:
        digest.update(str(path.name).encode())
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_bars(
    paths: Iterable[str | Path],
    interval: str = "5minute",
    start_date: date | None = None,
    end_date: date | None = None,
    *,
    session: SessionTimes,
) -> LoadedBars:
    """Load, validate and resample bars from files/directories; see the module doc for outcomes.

    ``session``: the run's hours (``settings.session.times``); part of the fingerprint, since
    other hours keep other bars."""
    files = expand_paths(paths)
    minutes = parse_interval(interval, session)
    quality = DataQuality()
    frames = [read_bar_file(path, quality, session=session) for path in files]
    options = f"{minutes}|{start_date}|{end_date}|{session}"
    return assemble_bars(
        frames,
        quality,
        minutes,
        _fingerprint(files, options),
        start_date,
        end_date,
        session=session,
        source=", ".join(map(str, files)),
    )


def assemble_bars(
    frames: list[pd.DataFrame],
    quality: DataQuality,
    minutes: int,
    fingerprint: str,
    start_date: date | None = None,
    end_date: date | None = None,
    *,
    session: SessionTimes,
    source: str = "input",
) -> LoadedBars:
    """Validated per-source frames → one date-filtered, resampled ``LoadedBars``."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:
        before = len(frame)
        frame = frame.drop_duplicates(["symbol", "ts"], keep="first")
        quality.drop("(across files)", "duplicate_ts", before - len(frame))
    if start_date is not None or end_date is not None:
        days = frame["ts"].dt.date
        mask = np.zeros(len(frame), dtype=bool)
        if start_date is not None:
            mask |= (days < start_date).to_numpy()
        if end_date is not None:
            mask |= (days > end_date).to_numpy()
        quality.drop("(date range)", "outside_dates", int(mask.sum()))
        frame = frame[~mask]
    frame = resample(frame.sort_values(["symbol", "ts"], kind="stable"), minutes, session=session)
    frame = frame[BAR_COLUMNS].reset_index(drop=True)
    quality.bars_out = len(frame)
    if frame.empty:
        raise DataError(f"{source}: no bars left after validation\n{quality}")
    return LoadedBars(frame, quality, minutes, fingerprint, session)
