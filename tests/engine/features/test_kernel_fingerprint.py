"""The kernels compute what the spec version they run under was recorded computing.

``SPEC_HASH`` guards the spec's text; this guards the arithmetic behind it. See
``tests/engine/features/kernel_fingerprint.py`` for the input, the tolerance and how to regenerate.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.features.spec import COLUMN, SPEC_VERSION
from tests.engine.features.kernel_fingerprint import (
    QUANTUM_BITS,
    digest,
    fingerprint_bars,
    kernel_outputs,
    recorded,
)

REGENERATE = "python -m tests.engine.features.kernel_fingerprint --write"


@pytest.fixture(scope="module")
def outputs() -> np.ndarray:
    return kernel_outputs()


def test_the_kernels_match_the_fingerprint_of_this_spec_version(outputs: np.ndarray) -> None:
    known = recorded()
    assert SPEC_VERSION in known, (
        f"no kernel fingerprint recorded for feature spec v{SPEC_VERSION}: run {REGENERATE}"
    )
    assert digest(outputs) == known[SPEC_VERSION], (
        f"the feature kernels' outputs changed, but SPEC_VERSION is still {SPEC_VERSION}: models "
        "and feature files recorded under this spec hash would get different numbers. Bump "
        "SPEC_VERSION in engine/features/spec.py (and re-pin PINNED_HASH in "
        "tests/engine/features/test_features_spec.py), then record the new fingerprint: "
        f"{REGENERATE}"
    )


def test_the_input_is_fixed_and_exercises_the_edge_cases() -> None:
    bars = fingerprint_bars()
    assert len(bars) == 1725 and bars["symbol"].nunique() == 3
    flat = (bars["high"] == bars["low"]).sum()
    assert flat > 60 and (bars["volume"] == 0).sum() > 20
    assert bars.groupby("symbol")["ts"].apply(lambda t: t.dt.date.nunique()).tolist() == [8, 8, 7]


def test_a_change_beyond_the_tolerance_moves_the_digest(outputs: np.ndarray) -> None:
    col = COLUMN["stoch_k"]  # a bounded oscillator, scale 100: 1e-4 of a value is far out
    row = int(np.flatnonzero(np.isfinite(outputs[:, col]))[-1])
    moved = outputs.copy()
    moved[row, col] *= np.float32(1.0001)
    assert digest(moved) != digest(outputs)
    warmup = outputs.copy()
    warmup[row, col] = np.nan  # a warm-up (NaN) position is part of the fingerprint
    assert digest(warmup) != digest(outputs)


def test_a_last_bit_difference_does_not(outputs: np.ndarray) -> None:
    """What another CPU or libm may change: one float32 ulp of an output. It moves the digest
    only if it crosses a quantisation boundary (an ulp is at most 1/16 of a quantum); pick
    outputs well inside their bucket."""
    v = outputs.astype(np.float64)
    finite = np.isfinite(v)
    _, exponent = np.frexp(np.where(finite, np.abs(v), 0.0).max(axis=0))
    position = np.where(finite, v, 0.0) / np.ldexp(1.0, exponent - QUANTUM_BITS)
    inside = finite & (np.abs(position - np.rint(position)) < 0.25)
    rows, cols = np.nonzero(inside)
    nudged = outputs.copy()
    for r, c in zip(rows[::97], cols[::97], strict=True):
        nudged[r, c] = np.nextafter(nudged[r, c], np.float32(np.inf))
    assert (nudged != outputs).sum() > 100
    assert digest(nudged) == digest(outputs)
