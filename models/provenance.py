"""Which data a model saw: the provenance every model file carries.

A backtest on bars the model was trained on measures how well it remembers them, not how it
trades; a promotion must be taken on bars it never saw. To tell the two apart a model file
records, for the data it was built from: the symbols, the bar interval, the training /
validation / test periods (overall and per symbol), the data's content fingerprint and the
feature spec hash.

Three bases, because they deserve different trust:

- ``measured`` — trained here: the periods are read off the rows the time split chose. A
  period runs from the first row of its first window to the last row any of its labels reads
  (``end + horizon``), per symbol; the overall period is the hull over symbols.
- ``stated`` — imported (the seed's Lightning checkpoint): the operator states the period the
  seed's training saw (``--trained-from/--trained-to``, optionally ``--symbols``). It is taken
  as training *and* validation together — the seed chose its checkpoint on validation data
  from that period — and cannot be checked here.
- ``unknown`` — a model file written before provenance existed, or an import whose period was
  not stated. Nothing shows that any backtest of it is out-of-sample.

Timestamps are UTC epoch ns of bar starts (inclusive at both ends), like everywhere in the
engine; ISO strings in IST are written alongside for people reading the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from config.sessions import IST
from models.errors import ModelError

MEASURED = "measured"
STATED = "stated"
UNKNOWN = "unknown"
BASES = (MEASURED, STATED, UNKNOWN)
#: the parts of a split, in time order
PARTS = ("train", "validation", "test")
#: the parts whose bars were used to fit the weights or to choose the checkpoint
SEEN_PARTS = ("train", "validation")


@dataclass(frozen=True)
class Span:
    """A closed range of bar-start timestamps, UTC epoch ns."""

    first_ns: int
    last_ns: int

    def __post_init__(self) -> None:
        if self.last_ns < self.first_ns:
            raise ModelError(
                f"period ends ({_iso(self.last_ns)}) before it starts ({_iso(self.first_ns)})"
            )

    def covers(self, ts_ns: np.ndarray) -> np.ndarray:
        """Which of ``ts_ns`` lie inside the span."""
        return (ts_ns >= self.first_ns) & (ts_ns <= self.last_ns)

    def describe(self) -> str:
        return f"{_minute(self.first_ns)} → {_minute(self.last_ns)} IST"

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_ns": int(self.first_ns),
            "last_ns": int(self.last_ns),
            "first": _iso(self.first_ns),
            "last": _iso(self.last_ns),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Span:
        try:
            return cls(int(raw["first_ns"]), int(raw["last_ns"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"provenance: a period needs first_ns and last_ns ({exc})") from None

    @classmethod
    def hull(cls, spans: Sequence[Span]) -> Span | None:
        if not spans:
            return None
        return cls(min(s.first_ns for s in spans), max(s.last_ns for s in spans))


def _iso(ts_ns: int) -> str:
    return pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(IST).isoformat()


def _minute(ts_ns: int) -> str:
    return pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(IST).strftime("%Y-%m-%d %H:%M")


def _opt_span(raw: Any) -> Span | None:
    return None if raw is None else Span.from_dict(raw)


@dataclass(frozen=True)
class Provenance:
    """What data a model was built from (see the module docstring for the three bases)."""

    basis: str
    symbols: tuple[str, ...] | None = None  # None: which symbols is not known
    interval_minutes: int | None = None
    train: Span | None = None  # stated: the whole stated period (training and validation)
    validation: Span | None = None
    test: Span | None = None
    per_symbol: Mapping[str, Mapping[str, Span]] = field(default_factory=dict)
    data_fingerprint: str | None = None
    spec_hash: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ModelError(f"provenance: basis {self.basis!r} must be one of {BASES}")

    @property
    def known(self) -> bool:
        return self.basis != UNKNOWN

    def seen_spans(self, symbol: str) -> list[Span] | None:
        """The periods of ``symbol`` whose bars fitted the weights or chose the checkpoint.

        ``[]`` when the provenance lists its symbols and ``symbol`` is not among them (a symbol
        the model never saw); ``None`` when it cannot be told (unknown provenance)."""
        if not self.known:
            return None
        if self.symbols is not None and symbol not in self.symbols:
            return []
        if self.basis == MEASURED:
            parts = self.per_symbol.get(symbol, {})
            return [parts[p] for p in SEEN_PARTS if p in parts]
        return self.seen_periods()

    def seen_periods(self) -> list[Span]:
        """The training and validation periods over all symbols (each the hull of the
        symbols' own); empty when unknown."""
        return [s for s in (self.train, self.validation) if s is not None]

    def summary(self) -> str:
        """One line for people: which data, which periods."""
        if not self.known:
            return "provenance unknown" + (f" ({self.note})" if self.note else "")
        symbols = "all symbols (not stated)" if self.symbols is None else ", ".join(self.symbols)
        interval = f", {self.interval_minutes}-minute bars" if self.interval_minutes else ""
        if self.basis == STATED:
            assert self.train is not None
            periods = f"training and validation {self.train.describe()} (stated at import)"
        else:
            periods = "; ".join(
                f"{name} {span.describe()}"
                for name, span in (
                    ("training", self.train),
                    ("validation", self.validation),
                    ("test", self.test),
                )
                if span is not None
            )
        return f"{self.basis}: {symbols}{interval}; {periods}"

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (the model file is read with ``weights_only=True``)."""
        return {
            "basis": self.basis,
            "symbols": None if self.symbols is None else list(self.symbols),
            "interval_minutes": self.interval_minutes,
            **{
                part: None if span is None else span.to_dict()
                for part, span in zip(PARTS, (self.train, self.validation, self.test), strict=True)
            },
            "per_symbol": {
                symbol: {part: span.to_dict() for part, span in parts.items()}
                for symbol, parts in self.per_symbol.items()
            },
            "data_fingerprint": self.data_fingerprint,
            "spec_hash": self.spec_hash,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Provenance:
        """A file's entry back; a file without one (written before provenance) is unknown."""
        if raw is None:
            return UNKNOWN_PROVENANCE
        if not isinstance(raw, Mapping):
            raise ModelError(f"provenance must be a dict, not {type(raw).__name__}")
        symbols = raw.get("symbols")
        interval = raw.get("interval_minutes")
        return cls(
            basis=str(raw.get("basis", UNKNOWN)),
            symbols=None if symbols is None else tuple(str(s) for s in symbols),
            interval_minutes=None if interval is None else int(interval),
            train=_opt_span(raw.get("train")),
            validation=_opt_span(raw.get("validation")),
            test=_opt_span(raw.get("test")),
            per_symbol={
                str(symbol): {str(p): Span.from_dict(s) for p, s in parts.items()}
                for symbol, parts in (raw.get("per_symbol") or {}).items()
            },
            data_fingerprint=raw.get("data_fingerprint"),
            spec_hash=raw.get("spec_hash"),
            note=str(raw.get("note") or ""),
        )


UNKNOWN_PROVENANCE = Provenance(
    UNKNOWN, note="the model file records no provenance (written before models carried one)"
)


def unknown(note: str) -> Provenance:
    return Provenance(UNKNOWN, note=note)


def measured(
    ts_ns: np.ndarray,
    symbol_codes: np.ndarray,
    symbols: Sequence[str],
    parts: Mapping[str, np.ndarray],
    window: int,
    horizon: int,
    *,
    interval_minutes: int | None,
    data_fingerprint: str,
    spec_hash: str,
) -> Provenance:
    """Provenance of a model trained here, from the rows of a (symbol, ts)-sorted table.

    ``parts``: window end rows per part (``train``, ``validation``, ``test``). A part's period
    for a symbol runs from its first window's first row to the row its last label reads
    (``end + horizon``, never past the symbol's last row)."""
    n = len(ts_ns)
    bounds = np.searchsorted(symbol_codes, np.arange(len(symbols) + 1))
    per_symbol: dict[str, dict[str, Span]] = {}
    overall: dict[str, list[Span]] = {part: [] for part in PARTS}
    for part, ends in parts.items():
        if part not in PARTS:
            raise ModelError(f"provenance: unknown part {part!r}; parts are {PARTS}")
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) == 0:
            continue
        codes = symbol_codes[ends]
        for code in np.unique(codes):
            mine = ends[codes == code]
            last_row = min(int(mine.max()) + horizon, int(bounds[code + 1]) - 1, n - 1)
            span = Span(int(ts_ns[int(mine.min()) - (window - 1)]), int(ts_ns[last_row]))
            per_symbol.setdefault(str(symbols[int(code)]), {})[part] = span
            overall[part].append(span)
    return Provenance(
        basis=MEASURED,
        symbols=tuple(sorted(per_symbol)),
        interval_minutes=interval_minutes,
        train=Span.hull(overall["train"]),
        validation=Span.hull(overall["validation"]),
        test=Span.hull(overall["test"]),
        per_symbol=per_symbol,
        data_fingerprint=data_fingerprint,
        spec_hash=spec_hash,
        note="periods measured from the training run's time split",
    )


def stated(
    trained_from: date,
    trained_to: date,
    symbols: Sequence[str] | None,
    *,
    interval_minutes: int | None = None,
    spec_hash: str | None = None,
    note: str = "",
) -> Provenance:
    """Provenance the operator states for an imported model: whole days in the exchange's zone,
    ``trained_from`` 00:00 to the end of ``trained_to`` (training and validation together)."""
    if trained_to < trained_from:
        raise ModelError(
            f"the training period ends ({trained_to}) before it starts ({trained_from})"
        )
    first = pd.Timestamp(datetime.combine(trained_from, time(0), IST))
    after = pd.Timestamp(datetime.combine(trained_to + timedelta(days=1), time(0), IST))
    span = Span(int(first.value), int(after.value) - 1)
    listed = None if symbols is None else tuple(sorted({s.strip() for s in symbols if s.strip()}))
    return Provenance(
        basis=STATED,
        symbols=listed or None,
        interval_minutes=interval_minutes,
        train=span,
        spec_hash=spec_hash,
        note=note or "period stated by the operator at import (training and validation together)",
    )
