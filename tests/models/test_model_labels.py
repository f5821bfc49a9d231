"""Labels: forward return vs threshold; never across symbols or (by default) sessions."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import (
    UNLABELED,
    LabelConfig,
    label_distribution,
    make_labels,
    trailing_volatility,
)
from models.network import BUY, HOLD, SELL


def test_fixed_threshold_labels_by_hand() -> None:
    close = np.array([100.0, 101.0, 100.9, 100.0, 100.05, 100.0])
    codes = np.zeros(6, dtype=np.int32)
    days = np.zeros(6, dtype=np.int64)
    labels = make_labels(close, codes, days, LabelConfig(horizon=1, mode="fixed", threshold=0.005))
    # +1%, -0.1%, -0.89%, +0.05%, -0.05%, no future bar
    assert labels.tolist() == [BUY, HOLD, SELL, HOLD, HOLD, UNLABELED]


def test_labels_never_cross_symbols_or_sessions() -> None:
    close = np.linspace(100, 110, 12)
    codes = np.array([0] * 6 + [1] * 6, dtype=np.int32)
    days = np.array([0, 0, 0, 1, 1, 1] * 2, dtype=np.int64)
    cfg = LabelConfig(horizon=2, mode="fixed", threshold=0.0)
    labels = make_labels(close, codes, days, cfg)
    # within a (symbol, day) run of 3 bars only the first bar has a bar 2 ahead
    assert (labels != UNLABELED).tolist() == [True, False, False] * 4
    crossing = make_labels(
        close, codes, days, LabelConfig(horizon=2, mode="fixed", threshold=0.0, cross_sessions=True)
    )
    assert (crossing != UNLABELED).tolist() == [True] * 4 + [False] * 2 + [True] * 4 + [False] * 2


def test_volatility_threshold_scales_with_recent_returns() -> None:
    rng = np.random.default_rng(1)
    n = 400
    rets = np.where(np.arange(n) < 200, 0.001, 0.004) * rng.standard_normal(n)
    close = 100 * np.exp(np.cumsum(rets))
    codes = np.zeros(n, dtype=np.int32)
    days = np.zeros(n, dtype=np.int64)
    cfg = LabelConfig(horizon=3, vol_window=40, vol_multiplier=0.5)
    sigma = trailing_volatility(close, codes, days, cfg)
    assert np.isnan(sigma[:19]).all() and np.isfinite(sigma[40:]).all()
    assert sigma[150] == pytest.approx(0.001, rel=0.35)
    assert sigma[390] == pytest.approx(0.004, rel=0.35)
    labels = make_labels(close, codes, days, cfg)
    assert set(np.unique(labels[40:-3])) <= {SELL, HOLD, BUY}


def test_labels_use_only_close_t_and_close_t_plus_h() -> None:
    """Changing any close except t and t+h (including the future beyond) leaves label t alone."""
    rng = np.random.default_rng(2)
    n = 300
    close = 100 * np.exp(np.cumsum(0.002 * rng.standard_normal(n)))
    codes = np.zeros(n, dtype=np.int32)
    days = np.zeros(n, dtype=np.int64)
    cfg = LabelConfig(horizon=5, vol_window=30)
    base = make_labels(close, codes, days, cfg)
    sigma = trailing_volatility(close, codes, days, cfg)
    t = 200
    later = close.copy()
    later[t + 6 :] *= 1.5  # beyond t + h
    later[t + 1 : t + 5] *= 0.7  # strictly between t and t + h
    assert make_labels(later, codes, days, cfg)[t] == base[t]
    # the volatility at t is computed from the past only
    assert trailing_volatility(later, codes, days, cfg)[t] == sigma[t]


def test_distribution_counts_and_fractions() -> None:
    labels = np.array([SELL, HOLD, HOLD, BUY, UNLABELED], dtype=np.int8)
    dist = label_distribution(labels)
    assert dist["counts"] == {"SELL": 1, "HOLD": 2, "BUY": 1}
    assert dist["fractions"]["HOLD"] == 0.5 and dist["unlabeled"] == 1


def test_bad_label_config_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        LabelConfig(horizon=0)
    with pytest.raises(ValueError, match="mode"):
        LabelConfig(mode="quantile")
    with pytest.raises(ValueError, match="unknown keys"):
        LabelConfig.from_dict({"horizn": 3})
