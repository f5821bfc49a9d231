"""A fingerprint of what the feature kernels compute, recorded per feature-spec version.

``SPEC_HASH`` covers the spec's text (names, formulas, parameters, warm-ups), not the kernels'
arithmetic: a kernel edit that changes the numbers without a ``SPEC_VERSION`` bump would reach
models trained on the old numbers under the same hash. So the 89 features' outputs on fixed
synthetic bars are hashed and the digest committed per spec version
(``kernel_fingerprint.json``); ``test_kernel_fingerprint.py`` fails when they differ.

Tolerance, so that the digest is the same on every CPU (AVX2 or AVX-512 machines, another
libm: transcendental functions and vector paths may differ in the last bit of a float64, and
that can flip the last bit of a float32 output): each feature column is quantised to
``2**-QUANTUM_BITS`` of its largest magnitude, rounded down to a power of two (≈ 1e-6 of the
column's scale). Every step is exact binary arithmetic — ``frexp`` for the scale, division by a
power of two, ``rint`` — so the digest moves only when an output moves by about a quantum: a
last-bit difference crosses a rounding boundary with a probability of order 2**-20. Warm-up
(NaN) positions are hashed exactly.

The bars are built from integers (an LCG, prices in paise) so they are identical everywhere; they
cover several sessions, a missing session, flat bars, a flat run long enough to zero every window,
zero volume and opening gaps.

Regenerate after a deliberate kernel change and a ``SPEC_VERSION`` bump::

    python -m tests.engine.features.kernel_fingerprint --write

Without ``--write`` it prints the digest and whether it matches the recorded one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import IST, NSE
from engine.features.calculator import history_arrays
from engine.features.spec import FEATURE_NAMES, SPEC_VERSION

FINGERPRINT_FILE = Path(__file__).with_name("kernel_fingerprint.json")
QUANTUM_BITS = 20
SYMBOLS = ("FPA", "FPB", "FPC")
SESSIONS = 8
BARS_PER_SESSION = 75  # 5-minute bars of the NSE session
FLAT_RUN = range(300, 330)  # FPB: 30 identical bars, longer than any 20-bar window
MISSING_SESSION = (2, 4)  # FPC has no bars on session 4


class _Lcg:
    """64-bit linear congruential generator (Knuth's MMIX constants): integers, so the same
    sequence on every machine and numpy version."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def next(self, bound: int) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self.state >> 33) % bound


def fingerprint_bars() -> pd.DataFrame:
    """The fixed input: ``SYMBOLS`` × ``SESSIONS`` weekday sessions of 5-minute bars."""
    days = pd.bdate_range("2024-01-01", periods=SESSIONS)
    offsets = pd.to_timedelta(NSE.open_minute + 5 * np.arange(BARS_PER_SESSION), unit="min")
    rows: list[tuple[pd.Timestamp, str, int, int, int, int, int]] = []
    for s, symbol in enumerate(SYMBOLS):
        rng = _Lcg(20240101 + s)
        close = 100_000 * (s + 1)  # paise
        bar = 0
        for d, day in enumerate(days):
            for k, offset in enumerate(offsets):
                gap = (rng.next(201) - 100) * 5 if k == 0 else 0
                step = (rng.next(41) - 20) * 5
                wick_hi, wick_lo = rng.next(9) * 5, rng.next(9) * 5
                volume = 0 if bar % 53 == 0 else rng.next(50_000)
                if (s, d) == MISSING_SESSION:
                    continue
                if (s == 1 and bar in FLAT_RUN) or bar % 37 == 0:
                    o = h = lo = c = close
                else:
                    o = close + gap
                    c = o + step
                    h, lo = max(o, c) + wick_hi, min(o, c) - wick_lo
                rows.append((day + offset, symbol, o, h, lo, c, volume))
                close = c
                bar += 1
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = pd.DatetimeIndex(frame["ts"]).tz_localize(IST)
    for col in ("open", "high", "low", "close"):
        frame[col] = frame[col] / 100.0  # paise → rupees: one correctly rounded division
    frame["volume"] = frame["volume"].astype(np.float64)
    return frame


def digest(values: np.ndarray) -> str:
    """sha256 of float32[n, 89] feature values, quantised per column (see the module doc)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    magnitude = np.where(finite, np.abs(v), 0.0).max(axis=0)
    _, exponent = np.frexp(magnitude)  # magnitude = m · 2**exponent, m in [0.5, 1)
    quantum = np.ldexp(1.0, exponent - QUANTUM_BITS)
    quantised = np.rint(np.where(finite, v, 0.0) / quantum).astype("<i8")
    h = hashlib.sha256()
    header = {"features": list(FEATURE_NAMES), "shape": list(v.shape), "bits": QUANTUM_BITS}
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(np.packbits(finite).tobytes())
    h.update(exponent.astype("<i8").tobytes())
    h.update(quantised.tobytes())
    return h.hexdigest()


def kernel_outputs() -> np.ndarray:
    """The 89 features of ``fingerprint_bars`` (rows in (symbol, ts) order), NSE session."""
    _bars, values, _ready = history_arrays(fingerprint_bars(), session=NSE)
    return values


def recorded() -> dict[str, str]:
    """Spec version → digest, as committed."""
    return dict(json.loads(FINGERPRINT_FILE.read_text())["spec_versions"])


def write(spec_version: str, value: str, replace: bool = False) -> str:
    """Record ``value`` for ``spec_version``; refuse to change a recorded one unless ``replace``."""
    known = recorded() if FINGERPRINT_FILE.exists() else {}
    old = known.get(spec_version)
    if old == value:
        return f"spec v{spec_version}: fingerprint already recorded ({value[:16]}…)"
    if old is not None and not replace:
        raise SystemExit(
            f"spec v{spec_version} already has fingerprint {old[:16]}…, the kernels now give "
            f"{value[:16]}…: bump SPEC_VERSION in engine/features/spec.py (and re-pin the hash "
            "in tests/engine/features/test_features_spec.py) before recording. --replace "
            "overwrites "
            "(only for a change of this fingerprint's own definition)."
        )
    known[spec_version] = value
    document = {
        "about": (
            "sha256 of the 89 features' outputs on tests/engine/features/kernel_fingerprint.py's "
            f"fixed bars, each feature quantised to 2**-{QUANTUM_BITS} of its largest magnitude; "
            "regenerate: python -m tests.engine.features.kernel_fingerprint --write"
        ),
        "spec_versions": dict(sorted(known.items())),
    }
    FINGERPRINT_FILE.write_text(json.dumps(document, indent=2) + "\n")
    return f"spec v{spec_version}: recorded {value[:16]}… in {FINGERPRINT_FILE}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the current spec's digest")
    parser.add_argument("--replace", action="store_true", help="with --write: overwrite")
    args = parser.parse_args(argv)
    value = digest(kernel_outputs())
    if args.write:
        print(write(SPEC_VERSION, value, args.replace))
        return 0
    expected = recorded().get(SPEC_VERSION) if FINGERPRINT_FILE.exists() else None
    print(f"spec v{SPEC_VERSION}: kernels {value}, recorded {expected}")
    return 0 if value == expected else 1


if __name__ == "__main__":
    sys.exit(main())
