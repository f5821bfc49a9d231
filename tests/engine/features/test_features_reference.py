"""Features without a TA-Lib twin, checked against straightforward pandas formulas written
from the spec's definitions (independent of the kernels' incremental arithmetic)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib
from features_testdata import edge_case_bars, nse_5min

from config.sessions import NSE
from engine.features.calculator import compute_history
from engine.features.spec import FEATURES, SMA_SPANS

Ref = Callable[[pd.DataFrame], np.ndarray]
REFERENCES: dict[str, Ref] = {}


def ref(name: str) -> Callable[[Ref], Ref]:
    def add(fn: Ref) -> Ref:
        REFERENCES[name] = fn
        return fn

    return add


def col(bars: pd.DataFrame, name: str) -> np.ndarray:
    return bars[name].to_numpy(dtype=np.float64)


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), 0.0)


def logret(bars: pd.DataFrame) -> pd.Series:
    c = bars["close"].astype(float)
    return 100.0 * np.log(c / c.shift(1))


def session_keys(bars: pd.DataFrame) -> pd.Series:
    return bars["ts"].dt.tz_convert("Asia/Kolkata").dt.date


for _n in SMA_SPANS:
    ref(f"dist_sma_{_n}")(lambda b, n=_n: col(b, "close") / b["close"].rolling(n).mean() - 1)
    ref(f"dist_ema_{_n}")(lambda b, n=_n: col(b, "close") / talib.EMA(col(b, "close"), n) - 1)
for _k in range(10):
    ref(f"logret_lag_{_k}")(lambda b, k=_k: logret(b).shift(k).to_numpy())


@ref("macd_hist_pct")
def _macd_hist_pct(b: pd.DataFrame) -> np.ndarray:
    return 100.0 * talib.MACD(col(b, "close"), 12, 26, 9)[2] / col(b, "close")


@ref("bb_pctb")
def _bb_pctb(b: pd.DataFrame) -> np.ndarray:
    up, _mid, dn = talib.BBANDS(col(b, "close"), 20, 2.0, 2.0, 0)
    return np.where(np.isnan(up), np.nan, safe_div(col(b, "close") - dn, up - dn))


@ref("bb_width")
def _bb_width(b: pd.DataFrame) -> np.ndarray:
    up, mid, dn = talib.BBANDS(col(b, "close"), 20, 2.0, 2.0, 0)
    return (up - dn) / mid


@ref("parkinson_20")
def _parkinson(b: pd.DataFrame) -> np.ndarray:
    hl = 100.0 * np.log(b["high"] / b["low"])
    return np.sqrt((hl**2).rolling(20).mean() / (4 * np.log(2))).to_numpy()


@ref("garman_klass_20")
def _garman_klass(b: pd.DataFrame) -> np.ndarray:
    hl = 100.0 * np.log(b["high"] / b["low"])
    co = 100.0 * np.log(b["close"] / b["open"])
    term = 0.5 * hl**2 - (2 * np.log(2) - 1) * co**2
    return np.sqrt(term.rolling(20).mean().clip(lower=0)).to_numpy()


@ref("volume_z_20")
def _volume_z(b: pd.DataFrame) -> np.ndarray:
    v = b["volume"].astype(float)
    mean, std = v.rolling(20).mean(), v.rolling(20).std(ddof=0)
    z = safe_div((v - mean).to_numpy(), std.to_numpy())
    return np.where(
        std.to_numpy() > 1e-9 * (mean.to_numpy() + 1), z, np.where(mean.isna(), np.nan, 0)
    )


def _vwap(b: pd.DataFrame) -> np.ndarray:
    tp = (b["high"] + b["low"] + b["close"]) / 3.0
    key = session_keys(b)
    pv = (tp * b["volume"]).groupby(key).cumsum()
    vol = b["volume"].groupby(key).cumsum()
    mean_tp = tp.groupby(key).cumsum() / (tp.groupby(key).cumcount() + 1)
    return np.where(vol > 0, pv / vol.where(vol > 0, 1.0), mean_tp)


ref("vwap_session")(_vwap)
ref("dist_vwap")(lambda b: col(b, "close") / _vwap(b) - 1)

for _w in (5, 20):
    ref(f"vol_ratio_{_w}")(
        lambda b, w=_w: np.where(
            b["volume"].rolling(w).mean().isna(),
            np.nan,
            safe_div(col(b, "volume"), b["volume"].rolling(w).mean().to_numpy()),
        )
    )


def _range(b: pd.DataFrame) -> np.ndarray:
    return col(b, "high") - col(b, "low")


ref("body_ratio")(lambda b: safe_div(col(b, "close") - col(b, "open"), _range(b)))
ref("upper_wick_ratio")(
    lambda b: safe_div(col(b, "high") - np.maximum(col(b, "open"), col(b, "close")), _range(b))
)
ref("lower_wick_ratio")(
    lambda b: safe_div(np.minimum(col(b, "open"), col(b, "close")) - col(b, "low"), _range(b))
)
ref("range_pct")(lambda b: 100.0 * _range(b) / col(b, "close"))
ref("gap_pct")(lambda b: (100.0 * (b["open"] / b["close"].shift(1) - 1)).to_numpy())


def _minute(b: pd.DataFrame) -> np.ndarray:
    ts = b["ts"].dt.tz_convert("Asia/Kolkata")
    return (ts.dt.hour * 60 + ts.dt.minute - 555).to_numpy(dtype=np.float64)


ref("mos_sin")(lambda b: np.sin(2 * np.pi * _minute(b) / 375))
ref("mos_cos")(lambda b: np.cos(2 * np.pi * _minute(b) / 375))
ref("day_of_week")(lambda b: b["ts"].dt.tz_convert("Asia/Kolkata").dt.day_of_week.to_numpy())
ref("bars_since_open")(lambda b: b.groupby(session_keys(b)).cumcount().to_numpy())
ref("dist_session_high")(
    lambda b: col(b, "close") / b["high"].groupby(session_keys(b)).cummax().to_numpy() - 1
)
ref("dist_session_low")(
    lambda b: col(b, "close") / b["low"].groupby(session_keys(b)).cummin().to_numpy() - 1
)
ref("session_return")(
    lambda b: (
        100.0 * np.log(col(b, "close") / b["open"].groupby(session_keys(b)).transform("first"))
    )
)


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {
        name: (bars, compute_history(bars, session=NSE))
        for name, bars in {"NIFTY 50": nse_5min("NIFTY 50"), "edge": edge_case_bars()}.items()
    }


def test_every_feature_is_checked_against_talib_or_a_reference() -> None:
    uncovered = [f.name for f in FEATURES if f.talib is None and f.name not in REFERENCES]
    assert uncovered == []


@pytest.mark.parametrize("case", ["NIFTY 50", "edge"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_feature_matches_reference(cases, case: str, name: str) -> None:  # type: ignore[no-untyped-def]
    bars, features = cases[case]
    expected = np.asarray(REFERENCES[name](bars), dtype=np.float64)
    ours = features[name].to_numpy(dtype=np.float64)
    warm = next(f.warmup for f in FEATURES if f.name == name)
    assert np.isnan(ours[:warm]).all()
    ours, expected = ours[warm:], expected[warm:]
    assert np.isfinite(ours).all()
    scale = np.nanmedian(np.abs(expected)) + 1e-12
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-5 * scale, err_msg=name)
