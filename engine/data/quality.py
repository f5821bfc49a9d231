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


@dataclass
class DataQuality:
    """Counts per reason, per file; rows dropped plus notes on rows repaired."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    bars_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    per_file: dict[str, Counter[str]] = field(default_factory=dict)

    def drop(self, file: str, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] += count
            self.per_file.setdefault(file, Counter())[reason] += count

    def note(self, file: str, reason: str, count: int) -> None:
        if count:
            self.notes[reason] += count
            self.per_file.setdefault(file, Counter())[reason] += count

    def as_dict(self) -> dict[str, object]:
        return {
            "files": list(self.files),
            "rows_read": self.rows_read,
            "bars_out": self.bars_out,
            "dropped": dict(sorted(self.dropped.items())),
            "notes": dict(sorted(self.notes.items())),
        }

    def __str__(self) -> str:
        lines = [
            f"data quality: {self.rows_read} rows read from {len(self.files)} file(s), "
            f"{self.bars_out} bars out"
        ]
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {count:>8} {reason}: {DROP_REASONS.get(reason, '')}")
        for reason, count in sorted(self.notes.items()):
            lines.append(f"  note    {count:>8} {reason}: {NOTE_REASONS.get(reason, '')}")
        return "\n".join(lines)
