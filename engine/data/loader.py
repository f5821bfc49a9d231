"""Bars in: read Parquet/CSV, validate, keep the session, resample to the run's interval.

The session's hours come from the caller (``settings.session.times``), never from a default
here: the hours that decide which bars are kept and where the resampling buckets start are the
ones the risk gates and the features use. How text and numeric timestamps are read and which
bars count as bad prints come from ``settings.data`` (``DataSettings``), passed as ``data``.

Outcomes for bad input (also in README "Data input"):
- refused with ``DataError`` naming the file (and row/column): unreadable file, no time column,
  a missing price column, text in a price or volume column, and every timestamp problem of
  ``timestamps`` (unparseable or empty; not ISO 8601 without ``data.date_format``; a column that
  mixes zoned and zone-less values; an epoch no unit fits; a date before 1990 or after
  tomorrow); with ``data.outlier_action = "refuse"``, a bad print (``outliers``);
- dropped and counted in ``DataQuality``: see ``quality.DROP_REASONS`` (NaN and ±inf prices
  and volumes, an empty symbol, bad prints by default, ...);
- repaired and noted: see ``quality.NOTE_REASONS``;
- skipped and listed in ``DataQuality.skipped``: in a directory, hidden files and files that
  are not .parquet/.pq/.csv/.txt, and a .txt that is not a bar table (no time or price columns,
  unreadable; the shared NSE source ships its bars as .txt, and notes as .txt too). A file
  named explicitly is always read, and refused if it is not bars.
Row numbers in messages are 1-based data rows in file order (the CSV header is not counted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import IST, SessionTimes, epoch_ns, local_days, local_minutes, parse_interval
from config.settings import DEFAULT_MAX_BAR_MOVE_PCT, DataSettings
from engine.data.outliers import outlier_mask
from engine.data.quality import DataError, DataQuality
from engine.data.timestamps import parse_times

TIME_COLUMNS = ("ts", "timestamp", "date", "datetime", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume"]
SUFFIXES = {".parquet", ".pq", ".csv", ".txt"}
#: found in a directory, these are read only if they turn out to be bar tables
LENIENT_SUFFIXES = {".txt"}


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


def expand_paths(paths: Iterable[str | Path], quality: DataQuality | None = None) -> list[Path]:
    """Files as given, directories expanded to their bar files (sorted, so runs are stable);
    what a directory holds besides is listed in ``quality.skipped``."""
    return [path for path, _ in _expand(paths, quality or DataQuality())]


def bar_files(paths: Iterable[str | Path], quality: DataQuality) -> list[tuple[Path, bool]]:
    """(file, lenient) for every file ``load_bars`` reads: ``lenient`` for a .txt found in a
    directory, which is skipped rather than refused when it is not a bar table."""
    return [
        (path, in_directory and path.suffix.lower() in LENIENT_SUFFIXES)
        for path, in_directory in _expand(paths, quality)
    ]


def _expand(paths: Iterable[str | Path], quality: DataQuality) -> list[tuple[Path, bool]]:
    """(file, found in a directory) for every file to read."""
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found: list[tuple[Path, bool]] = []
            for entry in sorted(path.iterdir()):
                if entry.name.startswith("."):
                    quality.skip(str(entry), "hidden file")
                elif entry.is_dir():
                    quality.skip(str(entry), "a directory (not searched)")
                elif entry.suffix.lower() not in SUFFIXES:
                    quality.skip(str(entry), f"not a data file ({', '.join(sorted(SUFFIXES))})")
                else:
                    found.append((entry, True))
            if not found:
                raise DataError(
                    f"{path}: directory holds no .parquet, .pq, .csv or .txt files\n{quality}"
                )
            out.extend(found)
        elif path.exists():
            out.append((path, False))
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


def _columns(raw: pd.DataFrame, name: str) -> tuple[pd.DataFrame, str]:
    """Lower-cased columns and the time column, or a refusal: the file is not a bar table."""
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    time_col = next((c for c in TIME_COLUMNS if c in raw.columns), None)
    if time_col is None:
        raise DataError(
            f"{name}: no time column; expected one of {', '.join(TIME_COLUMNS)}; "
            f"found {', '.join(raw.columns)}"
        )
    missing = [c for c in PRICE_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    return raw, time_col


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


def read_bar_file(
    path: Path,
    quality: DataQuality,
    *,
    session: SessionTimes,
    data: DataSettings | None = None,
    lenient: bool = False,
) -> pd.DataFrame | None:
    """One file → validated session bars, sorted by (symbol, ts).

    ``lenient`` (a .txt found in a directory): a file that is not a bar table is skipped and
    listed in ``quality.skipped`` (None) instead of refused; a bar table with bad rows is
    still refused like any other."""
    try:
        raw, _ = _columns(_read_raw(path), str(path))
    except DataError as exc:
        if not lenient:
            raise
        quality.skip(str(path), f"not read, not a bar table ({str(exc).removeprefix(f'{path}: ')})")
        return None
    return validate_bars(
        raw, str(path), quality, session=session, default_symbol=path.stem.split("_")[0], data=data
    )


def validate_bars(
    raw: pd.DataFrame,
    name: str,
    quality: DataQuality,
    *,
    session: SessionTimes,
    default_symbol: str | None = None,
    data: DataSettings | None = None,
) -> pd.DataFrame:
    """Raw rows (from a file, a download or the synthetic market) → validated session bars.

    ``name`` is what error messages call the source (a file path); ``data`` says how
    timestamps are read and which bars are bad prints (default: ``DataSettings()``)."""
    data = data or DataSettings()
    path = name
    raw, time_col = _columns(raw, name)
    quality.files.append(name)
    quality.rows_read += len(raw)
    ts = parse_times(
        path, time_col, raw[time_col], date_format=data.date_format, epoch_unit=data.epoch_unit
    )
    frame = pd.DataFrame({"ts": ts})
    no_symbol = np.zeros(len(frame), dtype=bool)
    if "symbol" in raw.columns:
        symbols = raw["symbol"].astype(str).str.strip()
        no_symbol = (raw["symbol"].isna() | (symbols == "")).to_numpy(dtype=bool)
        frame["symbol"] = symbols.to_numpy()
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

    drop(no_symbol, "missing_symbol")
    prices = frame[list(PRICE_COLUMNS)]
    drop(prices.isna().any(axis=1), "missing_price")
    drop(~np.isfinite(frame[list(PRICE_COLUMNS)].to_numpy()).all(axis=1), "non_finite_price")
    drop((frame[list(PRICE_COLUMNS)] <= 0).any(axis=1), "non_positive_price")
    o, h, lo, c = (frame[col].to_numpy() for col in PRICE_COLUMNS)
    drop((h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo), "inconsistent_ohlc")
    drop(np.isinf(frame["volume"].to_numpy()), "non_finite_volume")
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
    drop(_bad_prints(frame, name, data), "outlier_move")
    return frame.drop(columns="row").reset_index(drop=True)


def _bad_prints(frame: pd.DataFrame, name: str, data: DataSettings) -> np.ndarray:
    """``outliers.outlier_mask`` on validated bars sorted by (symbol, ts); with
    ``outlier_action = "refuse"`` the first one refuses the file."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    codes, _ = pd.factorize(frame["symbol"])
    key = codes.astype(np.int64) * 1_000_000 + local_days(epoch_ns(frame["ts"]))
    high, low, close = (frame[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close"))
    mask = outlier_mask(key, high, low, close, data.max_bar_move_pct)
    if data.outlier_action == "refuse" and mask.any():
        i = int(np.flatnonzero(mask)[0])
        near = [
            f"{close[j]:g}"
            for j in (i - 2, i - 1, i + 1, i + 2)
            if 0 <= j < len(key) and key[j] == key[i]
        ]
        bar = frame.iloc[i]
        raise DataError(
            f"{name}: row {int(bar['row']) + 1}: {bar['symbol']} bar at {bar['ts']} (low "
            f"{low[i]:g}, high {high[i]:g}) moves more than {data.max_bar_move_pct:g}% "
            f"(data.max_bar_move_pct) from neighbouring closes of its session that agree "
            f"with each other ({', '.join(near)}): a bad print, and data.outlier_action is "
            f"'refuse' ('drop' drops and counts such bars); {int(mask.sum())} such bar(s) in "
            "this file"
        )
    return mask


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


def _data_options(data: DataSettings) -> str:
    """The ``data`` settings that can change the bars, for the fingerprint — only when not the
    default, so fingerprints of runs on the defaults stay what they were. Not ``epoch_unit``
    or ``outlier_action``: a declared unit reads what detection would or refuses the file, and
    ``refuse`` either refuses or keeps exactly what ``drop`` keeps."""
    parts = []
    if data.date_format not in (None, "iso"):
        parts.append(f"date_format={data.date_format}")
    if data.max_bar_move_pct != DEFAULT_MAX_BAR_MOVE_PCT:
        parts.append(f"max_bar_move_pct={data.max_bar_move_pct!r}")
    return "".join(f"|{part}" for part in parts)


def load_bars(
    paths: Iterable[str | Path],
    interval: str = "5minute",
    start_date: date | None = None,
    end_date: date | None = None,
    *,
    session: SessionTimes,
    data: DataSettings | None = None,
    symbols: Sequence[str] | None = None,
) -> LoadedBars:
    """Load, validate and resample bars from files/directories; see the module doc for outcomes.

    ``symbols``: the universe to keep from what the files hold (all of it when None); a name
    the files do not hold is refused, naming the ones they do.

    ``session``: the run's hours (``settings.session.times``); part of the fingerprint, since
    other hours keep other bars. ``data``: the run's ``settings.data`` (how timestamps are
    read, the bad-print rule); the parts that change the bars are in the fingerprint too."""
    data = data or DataSettings()
    quality = DataQuality()
    listed = bar_files(paths, quality)
    minutes = parse_interval(interval, session)
    frames: list[pd.DataFrame] = []
    files: list[Path] = []
    for path, lenient in listed:
        frame = read_bar_file(path, quality, session=session, data=data, lenient=lenient)
        if frame is not None:
            frames.append(frame)
            files.append(path)
    source = ", ".join(str(path) for path, _ in listed)
    if not frames:
        raise DataError(f"{source}: no bar files among them\n{quality}")
    options = f"{minutes}|{start_date}|{end_date}|{session}{_data_options(data)}"
    if symbols:
        frames = _universe(frames, list(symbols), source)
        options += f"|symbols={','.join(sorted(set(symbols)))}"
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


def _universe(frames: list[pd.DataFrame], symbols: list[str], source: str) -> list[pd.DataFrame]:
    """The rows of ``symbols`` only; an unknown name is bad input naming what is there."""
    available = sorted(set().union(*(set(f["symbol"].unique()) for f in frames)))
    unknown = [s for s in symbols if s not in available]
    if unknown:
        raise DataError(
            f"symbol(s) {', '.join(unknown)} not in {source}; available: {', '.join(available)}"
        )
    kept = [f[f["symbol"].isin(symbols)] for f in frames]
    return [f for f in kept if len(f)]


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
