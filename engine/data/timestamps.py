"""A bar file's time column → tz-aware Asia/Kolkata timestamps, or a refusal naming the row.

Why this is strict: a timestamp read wrongly is not an error anything downstream notices.
``04/01/2021 09:16`` read month first is 1 April; an epoch in microseconds read as nanoseconds
lands on 1970-01-19 as sub-second bars; either way the run exits 0 with other P&L. So every
reading below is either unambiguous or declared, and everything else is refused with the file,
the row (1-based data row, file order), the column and the value.

* **Text** is ISO 8601 unless the run says otherwise (setting ``data.date_format``, flag
  ``--date-format``): ``YYYY-MM-DD``, optionally ``[ T]HH:MM[:SS[.fff]]`` and a zone (``Z``,
  ``+05:30``, ``+0530``). Year first cannot be misread. Other text is refused, since
  ``04/01/2021`` is 4 January to an Indian vendor and 1 April to most software:
  ``dayfirst`` also reads ``DD/MM/YYYY``, ``monthfirst`` ``MM/DD/YYYY`` (separator ``/``, ``-``
  or ``.``; the rest of the value as ISO), and a strptime format (``%d/%m/%Y %H:%M``) is
  applied exactly to every value.
* **Zones.** Either every value of a column carries one (converted to IST) or none does (IST
  wall-clock time); a column that mixes them is refused naming a row of each kind.
* **Numbers** (a numeric column, or text that is all digits) are epochs — unless a strptime
  ``--date-format`` is given, which reads digits (and integer columns) as text: ``%Y%m%d``.
  The unit — s, ms, us or ns — is the one that puts the values inside the
  plausible range below; the four ranges are a factor ~1000 apart and never overlap, so at most
  one unit fits a value. A value no unit fits, or one that fits another unit than most of the
  column, is refused. ``data.epoch_unit`` (``--epoch-unit``) declares the unit instead.
* **Plausible dates.** Every timestamp, however it was read (also a column already typed as
  datetime, which is where a wrong unit hides when the writer converted it), must fall between
  1990-01-01 and the end of tomorrow, IST; otherwise the file is refused naming the first row
  outside. NSE began trading in 1994; a bar from after tomorrow is a misread, not data.
* **Empty** timestamps are refused (a bar with no time cannot be placed).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import IST, IST_OFFSET_NS, IST_ZONE_NAME, NS_PER_DAY
from engine.data.quality import DataError

EARLIEST_DAY = date(1990, 1, 1)
#: nanoseconds per unit of an epoch timestamp
EPOCH_UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
ISO_HINT = "YYYY-MM-DD HH:MM[:SS], optionally with a zone such as +05:30"
FORMAT_HINT = (
    "--date-format (setting data.date_format) dayfirst, monthfirst or a strptime format such "
    "as '%d/%m/%Y %H:%M'"
)
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_DAY_MONTH = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(.*)$")
_DIGITS = re.compile(r"^[+-]?\d+(?:\.\d*)?$")


def plausible_range_ns(today: date | None = None) -> tuple[int, int]:
    """[1990-01-01 00:00 IST, the day after tomorrow 00:00 IST) as UTC epoch nanoseconds."""
    today = today or datetime.now(IST).date()
    lo = (EARLIEST_DAY - date(1970, 1, 1)).days * NS_PER_DAY - IST_OFFSET_NS
    hi = (today + timedelta(days=2) - date(1970, 1, 1)).days * NS_PER_DAY - IST_OFFSET_NS
    return lo, hi


def parse_times(
    name: str | Path,
    column: str,
    values: pd.Series,
    *,
    date_format: str | None = None,
    epoch_unit: str | None = None,
    today: date | None = None,
) -> pd.Series:
    """``values`` (one file's time column, in file order) → tz-aware IST timestamps.

    ``name`` and ``column`` are what messages call the file and the column; ``today`` fixes
    the end of the plausible range (tests), by default today in IST."""
    lo, hi = plausible_range_ns(today)
    values = values.reset_index(drop=True)
    strptime = date_format is not None and "%" in date_format
    hint = ""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert(IST)
        hint = "; a number in another epoch unit stored as a datetime?"
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values.dt.tz_localize(IST, ambiguous="raise", nonexistent="raise")
        hint = "; a number in another epoch unit stored as a datetime?"
    elif (
        pd.api.types.is_numeric_dtype(values.dtype)
        and not pd.api.types.is_bool_dtype(values.dtype)
        and not (strptime and pd.api.types.is_integer_dtype(values.dtype))
    ):
        return _from_epoch(name, column, values, values, epoch_unit, lo, hi)
    else:  # text, or integers that a strptime format reads as digits (20210104)
        text = values.astype("string").str.strip()
        _refuse_empty(name, column, values, (text.isna() | (text == "")).fillna(True))
        if not strptime and text.str.fullmatch(_DIGITS.pattern).all():
            return _from_epoch(name, column, values, pd.to_numeric(text), epoch_unit, lo, hi)
        parsed = _from_text(name, column, values, text, date_format)
    _refuse_empty(name, column, values, parsed.isna())
    _check_range(name, column, values, parsed, lo, hi, hint)
    return parsed


def _refuse_empty(name: str | Path, column: str, original: pd.Series, empty: pd.Series) -> None:
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy(dtype=bool))[0])
        raise DataError(
            f"{name}: row {row + 1}, column {column!r}: empty timestamp "
            f"({_shown(original.iloc[row])}); a bar without a time cannot be placed"
        )


def _first(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _from_text(
    name: str | Path, column: str, original: pd.Series, text: pd.Series, date_format: str | None
) -> pd.Series:
    if date_format is not None and "%" in date_format:
        zoned = "%z" in date_format or "%Z" in date_format
        parsed = pd.to_datetime(text, format=date_format, errors="coerce", utc=zoned)
        if parsed.isna().any():
            where = _where(name, column, original, _first(parsed.isna()))
            raise DataError(
                f"{where} does not match the date format {date_format!r} (data.date_format)"
            )
        return _to_ist(parsed)
    if date_format in ("dayfirst", "monthfirst"):
        text = _reorder_day_month(text, dayfirst=date_format == "dayfirst")
    zoned = text.str.contains(_ZONE, regex=True)
    if zoned.any() and not zoned.all():
        aware, naive = _first(zoned), _first(~zoned)
        raise DataError(
            f"{name}: column {column!r} mixes timestamps with a zone (row {aware + 1}: "
            f"{_shown(original.iloc[aware])}) and without one (row {naive + 1}: "
            f"{_shown(original.iloc[naive])}); without a zone a time is read as "
            f"{IST_ZONE_NAME}, so give every value a zone or none"
        )
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(zoned.any()))
    if parsed.isna().any():
        row = _first(parsed.isna())
        where = _where(name, column, original, row)
        if date_format in ("dayfirst", "monthfirst"):
            layout = "DD/MM/YYYY" if date_format == "dayfirst" else "MM/DD/YYYY"
            raise DataError(
                f"{where} is neither ISO 8601 ({ISO_HINT}) nor {date_format} {layout} …; "
                "give its strptime format with --date-format"
            )
        if _readable_somehow(str(original.iloc[row])):
            raise DataError(
                f"{where} is not ISO 8601 ({ISO_HINT}); other layouts are ambiguous "
                f"(04/01/2021 is 4 January or 1 April), so they are read only when "
                f"{FORMAT_HINT} says how"
            )
        raise DataError(
            f"{where} cannot be parsed (expected ISO 8601, {ISO_HINT}, or another layout "
            f"declared with {FORMAT_HINT})"
        )
    return _to_ist(parsed)


def _to_ist(parsed: pd.Series) -> pd.Series:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert(IST)
    return parsed.dt.tz_localize(IST, ambiguous="raise", nonexistent="raise")


def _reorder_day_month(text: pd.Series, *, dayfirst: bool) -> pd.Series:
    """DD/MM/YYYY… (or MM/DD/YYYY…) → YYYY-MM-DD…; other values (ISO) are left alone."""
    parts = text.str.extract(_DAY_MONTH.pattern)
    hit = parts[0].notna()
    if not hit.any():
        return text
    first, second, year, rest = parts[0][hit], parts[2][hit], parts[3][hit], parts[4][hit]
    day, month = (first, second) if dayfirst else (second, first)
    out = text.copy()
    out[hit] = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + rest
    return out


def _readable_somehow(value: str) -> bool:
    """Whether a value is a date in some layout (so the refusal is about ambiguity, not junk)."""
    try:
        pd.to_datetime(value, format="mixed")
    except (ValueError, OverflowError):
        return False
    return True


def _from_epoch(
    name: str | Path,
    column: str,
    original: pd.Series,
    numbers: pd.Series,
    unit: str | None,
    lo: int,
    hi: int,
) -> pd.Series:
    """Epoch numbers → timestamps, in the declared unit or the one their magnitude says."""
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    _refuse_empty(name, column, original, pd.Series(np.isnan(values)))
    fits = {u: (values >= lo / f) & (values < hi / f) for u, f in EPOCH_UNITS.items()}
    span = f"{_day(lo)} .. {_day(hi - 1)}"
    if unit is None:
        unit = max(fits, key=lambda u: int(fits[u].sum()))
        if not fits[unit].any():
            raise DataError(
                f"{name}: row 1, column {column!r}: {_shown(original.iloc[0])} is a number, "
                f"but no epoch unit (s, ms, us, ns) puts it between {span}; a date written as "
                "digits (20210104) needs --date-format (setting data.date_format) '%Y%m%d'"
            )
        detected = f"the epoch unit {unit!r} that most of the column fits"
    else:
        detected = f"the declared epoch unit {unit!r}"
    factor = EPOCH_UNITS[unit]
    if not fits[unit].all():
        row = _first(~fits[unit])
        others = [u for u in EPOCH_UNITS if fits[u][row]]
        where = f"it fits unit {others[0]!r}" if others else "no unit puts it there"
        raise DataError(
            f"{name}: row {row + 1}, column {column!r}: epoch {_shown(original.iloc[row])} read in "
            f"{detected} is {_when(values[row] * factor)}, outside the plausible trading "
            f"dates {span} ({where})"
        )
    if pd.api.types.is_integer_dtype(numbers.dtype):
        ns = numbers.to_numpy(dtype=np.int64) * factor
    else:
        ns = np.round(values * factor).astype(np.int64)
    return pd.Series(pd.to_datetime(ns, utc=True).tz_convert(IST))


def _check_range(
    name: str | Path,
    column: str,
    original: pd.Series,
    parsed: pd.Series,
    lo: int,
    hi: int,
    hint: str,
) -> None:
    # compared as timestamps, not as ns integers: a datetime column of another resolution
    # can hold dates that do not fit in int64 nanoseconds
    bad = (parsed < pd.Timestamp(lo, tz="UTC")) | (parsed >= pd.Timestamp(hi, tz="UTC"))
    if bad.any():
        row = _first(bad)
        raise DataError(
            f"{name}: row {row + 1}, column {column!r}: timestamp {_shown(original.iloc[row])} is "
            f"{parsed.iloc[row]}, outside the plausible trading dates "
            f"{_day(lo)} .. {_day(hi - 1)}{hint}"
        )


def _where(name: str | Path, column: str, original: pd.Series, row: int) -> str:
    return f"{name}: row {row + 1}, column {column!r}: timestamp {_shown(original.iloc[row])}"


def _shown(value: object) -> str:
    """A cell as the user wrote it: ``'04/01/2021'``, ``12``, ``2021-01-04 09:15:00`` — not
    ``np.int64(12)`` or ``Timestamp(...)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return str(value)
    return repr(value)


def _day(ts_ns: int) -> str:
    return str(pd.Timestamp(ts_ns, tz="UTC").tz_convert(IST).date())


def _when(ts_ns: float) -> str:
    """A timestamp for a message, also one far outside what pandas can represent."""
    if not -9.2e18 < ts_ns < 9.2e18:
        return f"{ts_ns / 1e9 / 86400 / 365.25 + 1970:.0f} (about)"
    return str(pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(IST))
