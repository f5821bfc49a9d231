"""Provenance: which bars count as seen by a model, per basis (measured, stated, unknown)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelError
from models.provenance import (
    MEASURED,
    Provenance,
    Span,
    measured,
    stated,
    unknown,
)


def ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="Asia/Kolkata").value)


def test_a_stated_period_is_whole_exchange_days_and_covers_training_and_validation() -> None:
    prov = stated(date(2021, 1, 1), date(2024, 12, 31), None)
    assert prov.train == Span(ns("2021-01-01 00:00"), ns("2025-01-01 00:00") - 1)
    assert prov.validation is None and prov.symbols is None
    # symbols not stated: every symbol counts as seen over the whole period
    assert prov.seen_spans("ANYTHING") == [prov.train]
    listed = stated(date(2021, 1, 1), date(2021, 6, 30), [" INFY", "TCS", ""])
    assert listed.symbols == ("INFY", "TCS")
    assert listed.seen_spans("TCS") == [listed.train] and listed.seen_spans("WIPRO") == []
    assert "INFY, TCS" in listed.summary() and "stated at import" in listed.summary()
    with pytest.raises(ModelError, match=r"ends .* before it starts"):
        stated(date(2021, 2, 1), date(2021, 1, 31), None)


def test_measured_periods_per_symbol_and_unknown() -> None:
    ts = np.array([ns(f"2021-01-04 09:{15 + 5 * i:02d}") for i in range(9)] * 2, dtype=np.int64)
    codes = np.repeat(np.array([0, 1], dtype=np.int32), 9)
    prov = measured(
        ts, codes, ("A", "B"),
        {"train": np.array([2, 3]), "validation": np.array([6]), "test": np.array([16])},
        window=2, horizon=1, interval_minutes=5, data_fingerprint="fp", spec_hash="spec",
    )  # fmt: skip
    assert prov.basis == MEASURED and prov.symbols == ("A", "B")
    assert prov.per_symbol["A"]["train"] == Span(int(ts[1]), int(ts[4]))
    assert prov.per_symbol["A"]["validation"] == Span(int(ts[5]), int(ts[7]))
    # the label of the symbol's last row would read past it: the span stops at the symbol's end
    assert prov.per_symbol["B"]["test"] == Span(int(ts[15]), int(ts[17]))
    assert prov.seen_spans("B") == []  # only tested on: never fitted or chosen on
    assert Provenance.from_dict(prov.to_dict()) == prov
    assert prov.to_dict()["train"]["first"] == "2021-01-04T09:20:00+05:30"
    gone = unknown("not stated")
    assert gone.seen_spans("A") is None and "not stated" in gone.summary()
    with pytest.raises(ModelError, match="basis"):
        Provenance("guessed")
