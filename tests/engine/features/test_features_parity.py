"""Every feature that declares a TA-Lib twin matches it (1e-6 relative after warm-up), driven
from the spec alone, on real NSE bars and on synthetic edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from features_testdata import (
    derived_input,
    edge_case_bars,
    nse_5min,
    random_bar_paths,
    session_stamps,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.sessions import NSE
from engine.features.calculator import compute_history
from engine.features.spec import FEATURES, FeatureDef

TALIB_FEATURES = [f for f in FEATURES if f.talib is not None]
RTOL = 1e-6


def talib_reference(feature: FeatureDef, bars: pd.DataFrame) -> np.ndarray:
    ref = feature.talib
    assert ref is not None
    offset = 0
    inputs = []
    for name in ref.inputs:
        if name in bars.columns:
            inputs.append(bars[name].to_numpy(dtype=np.float64))
        else:
            series, offset = derived_input(name, bars)
            inputs.append(series)
    result = getattr(talib, ref.function)(*inputs, **ref.kwargs)
    if isinstance(result, tuple):
        result = result[ref.output]
    return np.concatenate([np.full(offset, np.nan), result])


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    out = {}
    for name, bars in {
        "NIFTY 50": nse_5min("NIFTY 50"),
        "NIFTY BANK": nse_5min("NIFTY BANK"),
        "edge": edge_case_bars(),
    }.items():
        out[name] = (bars, compute_history(bars, session=NSE))
    return out


def test_spec_declares_talib_twins_for_the_benchmark_subset() -> None:
    functions = {f.talib.function for f in TALIB_FEATURES if f.talib}
    assert {"SMA", "EMA", "RSI", "MACD", "BBANDS", "ATR", "NATR", "ADX", "PLUS_DI", "MINUS_DI",
            "CCI", "STOCH", "WILLR", "OBV", "MFI", "ROC", "STDDEV"} <= functions  # fmt: skip


@pytest.mark.parametrize("case", ["NIFTY 50", "NIFTY BANK", "edge"])
@pytest.mark.parametrize("feature", TALIB_FEATURES, ids=lambda f: f.name)
def test_feature_matches_talib(cases, case: str, feature: FeatureDef) -> None:  # type: ignore[no-untyped-def]
    bars, features = cases[case]
    ref = talib_reference(feature, bars)
    ours = features[feature.name].to_numpy(dtype=np.float64)
    w = feature.warmup
    # the spec's warm-up is TA-Lib's lookback: NaN before it, a value from it on
    assert np.isnan(ref[:w]).all() and not np.isnan(ref[w]), "spec warm-up != TA-Lib lookback"
    assert np.isnan(ours[:w]).all(), "value before warm-up"
    ours, ref = ours[w:], ref[w:]
    assert np.isfinite(ours).all()
    err = np.abs(ours - ref)
    bad = err > RTOL * np.abs(ref)
    if bad.any():
        i = int(np.argmax(bad))
        pytest.fail(
            f"{feature.name} on {case}: {int(bad.sum())} bars beyond 1e-6 relative; first at bar "
            f"{i + w}: ours {ours[i]!r} vs TA-Lib {ref[i]!r}"
        )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(260, 600).flatmap(random_bar_paths))
def test_talib_parity_on_random_paths(path) -> None:  # type: ignore[no-untyped-def]
    """Unseen data: random levels, flat windows, jumps and zero volume still match TA-Lib."""
    keep = path["present"]
    if keep.sum() < 200:
        keep[:] = True
    n = int(keep.sum())
    bars = pd.DataFrame(
        {
            "ts": session_stamps(n),
            "symbol": "RND",
            "open": path["o"][keep],
            "high": path["h"][keep],
            "low": path["l"][keep],
            "close": path["c"][keep],
            "volume": path["v"][keep],
        }
    )
    features = compute_history(bars, session=NSE)
    for feature in TALIB_FEATURES:
        ref = talib_reference(feature, bars)[feature.warmup :]
        ours = features[feature.name].to_numpy(dtype=np.float64)[feature.warmup :]
        with np.errstate(over="ignore"):
            expected = ref.astype(np.float32).astype(np.float64)
        same = (ours == expected) | (np.abs(ours - ref) <= RTOL * np.abs(ref))
        assert same.all(), f"{feature.name}: first mismatch at {int(np.argmin(same))}"
