"""The data-quality summary printed with every run and stored with it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class DataError(ValueError):
    """Input refused as a whole; the message names the file, and the row and column if known."""


# What each counter means — the documented outcome for each kind of bad row.
DROP_REASONS = {
    "outside_session": "bar outside the session's hours (pre-open, after-hours, special sessions)",
    "missing_price": "empty/NaN open, high, low or close",
    "non_finite_price": "inf or -inf open, high, low or close",
    "non_finite_volume": "inf or -inf volume",
    "missing_symbol": "empty symbol in the symbol column",
    "outlier_move": "bad print: moves more than data.max_bar_move_pct from two agreeing "
    "neighbours in its session and back (engine/data/outliers.py)",
    "non_positive_price": "open, high, low or close <= 0",
    "inconsistent_ohlc": "high < low, or open/close outside [low, high]",
    "negative_volume": "volume < 0",
    "duplicate_ts": "same symbol and timestamp seen before in the file (first kept)",
    "outside_dates": "before --start-date or after --end-date",
}
NOTE_REASONS = {
    "unsorted_rows": "rows not in time order (sorted, nothing dropped)",
    "missing_volume": "NaN volume or no volume column (treated as 0)",
}

#: skipped files listed by name in the printed summary (all of them are in ``as_dict``)
SKIPPED_SHOWN = 20


@dataclass
class DataQuality:
    """Counts per reason, per file; rows dropped plus notes on rows repaired."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    bars_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    per_file: dict[str, Counter[str]] = field(default_factory=dict)
    #: files in a data directory that were not read, each "path: why"
    skipped: list[str] = field(default_factory=list)

    def drop(self, file: str, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] += count
            self.per_file.setdefault(file, Counter())[reason] += count

    def note(self, file: str, reason: str, count: int) -> None:
        if count:
            self.notes[reason] += count
            self.per_file.setdefault(file, Counter())[reason] += count

    def skip(self, file: str, why: str) -> None:
        self.skipped.append(f"{file}: {why}")

    def as_dict(self) -> dict[str, object]:
        return {
            "files": list(self.files),
            "skipped": list(self.skipped),
            "rows_read": self.rows_read,
            "bars_out": self.bars_out,
            "dropped": dict(sorted(self.dropped.items())),
            "notes": dict(sorted(self.notes.items())),
        }

    def __str__(self) -> str:
        lines = [
            f"data quality: {self.rows_read:,} rows read from {len(self.files)} file(s), "
            f"{self.bars_out:,} bars out"
        ]
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {count:>9,} {reason}: {DROP_REASONS.get(reason, '')}")
        for reason, count in sorted(self.notes.items()):
            lines.append(f"  note    {count:>9,} {reason}: {NOTE_REASONS.get(reason, '')}")
        for skipped in self.skipped[:SKIPPED_SHOWN]:
            lines.append(f"  skipped {skipped}")
        if len(self.skipped) > SKIPPED_SHOWN:
            lines.append(f"  skipped ... and {len(self.skipped) - SKIPPED_SHOWN} more")
        return "\n".join(lines)
