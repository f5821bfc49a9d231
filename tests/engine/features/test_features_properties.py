"""Property tests: random OHLCV universes with gaps, flat prices, zero volume, huge jumps and
extreme price levels never crash the calculator and never produce NaN/inf after warm-up."""

from __future__ import annotations

import numpy as np
from features_testdata import random_bar_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.sessions import NSE
from engine.features.calculator import FeatureCalculator
from engine.features.spec import FEATURES, N_FEATURES

WARMUPS = np.array([f.warmup for f in FEATURES])
T0 = 1_641_181_500_000_000_000  # 2022-01-03 09:15 IST
STEP = 300_000_000_000


@st.composite
def universes(draw: st.DrawFn) -> tuple[int, list[dict[str, np.ndarray]]]:
    n_bars = draw(st.integers(210, 420))
    n_symbols = draw(st.integers(1, 4))
    return n_bars, [draw(random_bar_paths(n_bars)) for _ in range(n_symbols)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universes(), st.sampled_from([1, 75]))
def test_no_nan_or_inf_after_warm_up(universe, bars_per_session: int) -> None:  # type: ignore[no-untyped-def]
    n_bars, paths = universe
    calc = FeatureCalculator(capacity=1, session=NSE)
    seen = np.zeros(len(paths), dtype=np.int64)
    sids = np.arange(len(paths)) * 7  # sparse ids: capacity grows
    for t in range(n_bars):
        rows = [j for j, p in enumerate(paths) if p["present"][t]]
        if not rows:
            continue
        o, h, lo, c, v = (np.array([paths[j][k][t] for j in rows]) for k in "ohlcv")
        values, ready = calc.update(
            sids[rows], T0 + t * STEP, o, h, lo, c, v,
            np.full(len(rows), t % bars_per_session == 0),
        )  # fmt: skip
        assert values.shape == (len(rows), N_FEATURES)
        nth = seen[rows]
        warm = nth[:, None] >= WARMUPS[None, :]
        assert np.isfinite(values[warm]).all(), "NaN/inf after a feature's warm-up"
        assert np.isnan(values[~warm]).all(), "value before a feature's warm-up"
        assert (ready == warm.all(axis=1)).all()
        seen[rows] += 1
