"""The feature spec: the 89 per-bar features, their order, parameters, warm-up and TA-Lib twins.

The spec is the contract between the calculator (which writes column ``i`` of every feature
vector), the feature files built for training, and the model that reads them. Its hash is
recorded in every feature file, model and run, and a mismatch is refused, so a silent change of
order or meaning cannot reach a model trained on something else. Change anything here ⇒ bump
``SPEC_VERSION``; the hash changes by itself.

Conventions that every formula below relies on:

- ``t`` is the symbol's own bar count (0 for its first bar); a missing bar is simply not a bar.
- ``warmup`` is the number of bars before the first valid value (TA-Lib's "lookback"). Before
  it the calculator writes NaN; from it on a value is always finite. A symbol's vector is
  *ready* when every feature is past its warm-up, i.e. from bar ``MAX_WARMUP`` on.
- ``logret_pct[t] = 100 * ln(close[t] / close[t-1])`` for ``t >= 1`` (percent log return). It is
  the derived input of the log-return features; ``DERIVED_INPUTS`` names it for parity tests.
- Ratios whose denominator is zero (flat bars, zero volume on index data) are defined as 0
  unless the formula says otherwise; TA-Lib's own zero guards are kept where TA-Lib has them.
- Session-scoped features restart at the first bar of each session (``session_open``) and at a
  symbol's first bar. ``minute_of_session`` is the bar's start in minutes after the session's
  open, and the time-of-session period is the session's length: the spec states them for the
  NSE session (09:15 IST, ``SESSION_MINUTES``, from ``config.sessions.NSE``); a run whose
  settings name other hours computes them in its own session (the calculator takes the hours).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from config.sessions import NSE

SPEC_VERSION = "1.0.0"

SESSION_MINUTES = NSE.length_minutes  # 375: 09:15–15:30 IST


class SpecMismatchError(ValueError):
    """Something made under one feature spec (a feature file, a model, a prediction table) met
    features of another, and is refused.

    The one class for every such refusal, in the core because the spec is the core's: the
    feature-file reader raises it here, the model package re-exports it (``models.errors``), and
    a caller catches one type — a ``ValueError``, which the CLI reports as bad input (status 2).
    The message names both hashes, since the person reading it has to find out which side is
    stale.
    """

    def __init__(
        self,
        what: str,
        found_hash: str,
        expected_hash: str,
        remedy: str = "it was made under different features and is refused",
        against: str = "the features'",
    ) -> None:
        super().__init__(
            f"{what}: feature spec hash {found_hash} does not match {against} spec hash "
            f"{expected_hash}; {remedy}"
        )
        self.found_hash = found_hash
        self.expected_hash = expected_hash


DERIVED_INPUTS: dict[str, str] = {
    "logret_pct": "100 * ln(close[t] / close[t-1]) for t >= 1 (the series starts at bar 1)",
}

Param = int | float


@dataclass(frozen=True)
class TalibRef:
    """How to reproduce a feature with TA-Lib's Python API.

    ``getattr(talib, function)(*[inputs...], **kwargs)``, taking output ``output`` when the
    function returns several arrays. An input is an OHLCV column or a ``DERIVED_INPUTS`` name.
    """

    function: str
    kwargs: dict[str, Param]
    output: int
    inputs: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "arguments": dict(self.kwargs),
            "output_index": self.output,
            "input_columns": list(self.inputs),
        }


@dataclass(frozen=True)
class FeatureDef:
    name: str
    group: str
    formula: str
    warmup: int
    params: dict[str, Param] = field(default_factory=dict)
    talib: TalibRef | None = None


SMA_SPANS = (5, 10, 20, 50, 100, 200)
EMA_SPANS = SMA_SPANS  # same spans: each EMA is seeded by the SMA of the same span
RSI_PERIODS = (7, 14, 21)
ROC_LAGS = (5, 10, 20, 60)
MOM_LAGS = (5, 10, 20)
LOGRET_STD_WINDOWS = (5, 10, 20, 60)
LOGRET_LAGS = tuple(range(10))
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
DMI_PERIOD = 14
STOCH_K, STOCH_SLOWK, STOCH_SLOWD = 14, 3, 3
WILLR_PERIOD = 14
CCI_PERIOD = 20
ATR_PERIOD = 14
BB_PERIOD, BB_NBDEV = 20, 2.0
RANGE_VOL_WINDOW = 20  # Parkinson and Garman–Klass
MFI_PERIOD = 14
VOLUME_Z_WINDOW = 20
VOLUME_RATIO_WINDOWS = (5, 20)

_C = ("close",)
_HLC = ("high", "low", "close")
_HLCV = ("high", "low", "close", "volume")
_MACD_KW: dict[str, Param] = {
    "fastperiod": MACD_FAST,
    "slowperiod": MACD_SLOW,
    "signalperiod": MACD_SIGNAL,
}
_STOCH_KW: dict[str, Param] = {
    "fastk_period": STOCH_K,
    "slowk_period": STOCH_SLOWK,
    "slowk_matype": 0,
    "slowd_period": STOCH_SLOWD,
    "slowd_matype": 0,
}
_BB_KW: dict[str, Param] = {
    "timeperiod": BB_PERIOD,
    "nbdevup": BB_NBDEV,
    "nbdevdn": BB_NBDEV,
    "matype": 0,
}
_MACD_WARMUP = (MACD_SLOW - 1) + (MACD_SIGNAL - 1)
_STOCH_WARMUP = (STOCH_K - 1) + (STOCH_SLOWK - 1) + (STOCH_SLOWD - 1)


def _trend() -> list[FeatureDef]:
    out: list[FeatureDef] = []
    for n in SMA_SPANS:
        out.append(
            FeatureDef(
                f"sma_{n}",
                "trend",
                f"mean(close[t-{n}+1..t])",
                n - 1,
                {"timeperiod": n},
                TalibRef("SMA", {"timeperiod": n}, 0, _C),
            )
        )
    for n in EMA_SPANS:
        out.append(
            FeatureDef(
                f"ema_{n}",
                "trend",
                f"seed = sma_{n} at t={n - 1}; then ema += (close - ema) * 2/({n}+1)",
                n - 1,
                {"timeperiod": n},
                TalibRef("EMA", {"timeperiod": n}, 0, _C),
            )
        )
    for n in SMA_SPANS:
        out.append(
            FeatureDef(f"dist_sma_{n}", "trend", f"close / sma_{n} - 1", n - 1, {"timeperiod": n})
        )
    for n in EMA_SPANS:
        out.append(
            FeatureDef(f"dist_ema_{n}", "trend", f"close / ema_{n} - 1", n - 1, {"timeperiod": n})
        )
    macd_doc = (
        "ema(close, 12) - ema(close, 26); both EMAs seeded by plain means whose windows end at "
        "t=25 (TA-Lib's seeding)"
    )
    out += [
        FeatureDef(
            "macd",
            "trend",
            macd_doc,
            _MACD_WARMUP,
            dict(_MACD_KW),
            TalibRef("MACD", dict(_MACD_KW), 0, _C),
        ),
        FeatureDef(
            "macd_signal",
            "trend",
            "ema(macd, 9), seeded by the mean of its first 9",
            _MACD_WARMUP,
            dict(_MACD_KW),
            TalibRef("MACD", dict(_MACD_KW), 1, _C),
        ),
        FeatureDef(
            "macd_hist",
            "trend",
            "macd - macd_signal",
            _MACD_WARMUP,
            dict(_MACD_KW),
            TalibRef("MACD", dict(_MACD_KW), 2, _C),
        ),
        FeatureDef(
            "macd_hist_pct", "trend", "100 * macd_hist / close", _MACD_WARMUP, dict(_MACD_KW)
        ),
    ]
    p = DMI_PERIOD
    dm_doc = f"Wilder: +DM/-DM and TR summed over bars 1..{p - 1}, then x -= x/{p}; x += today's"
    out += [
        FeatureDef(
            "adx_14",
            "trend",
            f"first = mean of DX over bars {p}..{2 * p - 1}; then Wilder-smoothed DX",
            2 * p - 1,
            {"timeperiod": p},
            TalibRef("ADX", {"timeperiod": p}, 0, _HLC),
        ),
        FeatureDef(
            "plus_di_14",
            "trend",
            f"100 * +DM14 / TR14 ({dm_doc})",
            p,
            {"timeperiod": p},
            TalibRef("PLUS_DI", {"timeperiod": p}, 0, _HLC),
        ),
        FeatureDef(
            "minus_di_14",
            "trend",
            f"100 * -DM14 / TR14 ({dm_doc})",
            p,
            {"timeperiod": p},
            TalibRef("MINUS_DI", {"timeperiod": p}, 0, _HLC),
        ),
    ]
    return out


def _momentum() -> list[FeatureDef]:
    out: list[FeatureDef] = []
    for n in RSI_PERIODS:
        out.append(
            FeatureDef(
                f"rsi_{n}",
                "momentum",
                f"100 * avg_gain / (avg_gain + avg_loss), Wilder averages over {n}, seeded by "
                "plain means of the first n changes; 0 when both averages are exactly 0 (TA-Lib)",
                n,
                {"timeperiod": n},
                TalibRef("RSI", {"timeperiod": n}, 0, _C),
            )
        )
    for n in ROC_LAGS:
        out.append(
            FeatureDef(
                f"roc_{n}",
                "momentum",
                f"100 * (close / close[t-{n}] - 1)",
                n,
                {"timeperiod": n},
                TalibRef("ROC", {"timeperiod": n}, 0, _C),
            )
        )
    for n in MOM_LAGS:
        out.append(
            FeatureDef(
                f"mom_{n}",
                "momentum",
                f"close - close[t-{n}]",
                n,
                {"timeperiod": n},
                TalibRef("MOM", {"timeperiod": n}, 0, _C),
            )
        )
    out += [
        FeatureDef(
            "stoch_k",
            "momentum",
            "sma3 of fast %K = 100 * (close - lowest14) / (highest14 - lowest14); "
            "fast %K = 0 on a flat window (range <= 1e-14 * (|hh| + |ll|))",
            _STOCH_WARMUP,
            dict(_STOCH_KW),
            TalibRef("STOCH", dict(_STOCH_KW), 0, _HLC),
        ),
        FeatureDef(
            "stoch_d",
            "momentum",
            "sma3 of stoch_k",
            _STOCH_WARMUP,
            dict(_STOCH_KW),
            TalibRef("STOCH", dict(_STOCH_KW), 1, _HLC),
        ),
        FeatureDef(
            "willr_14",
            "momentum",
            "-100 * (highest14 - close) / (highest14 - lowest14), clamped to [-100, 0]; "
            "0 on a flat window",
            WILLR_PERIOD - 1,
            {"timeperiod": WILLR_PERIOD},
            TalibRef("WILLR", {"timeperiod": WILLR_PERIOD}, 0, _HLC),
        ),
        FeatureDef(
            "cci_20",
            "momentum",
            "(tp - mean20(tp)) / (0.015 * meandev20(tp)), tp = (h+l+c)/3; 0 when either is within "
            "1e-14 * |mean20(tp)|",
            CCI_PERIOD - 1,
            {"timeperiod": CCI_PERIOD},
            TalibRef("CCI", {"timeperiod": CCI_PERIOD}, 0, _HLC),
        ),
    ]
    return out


def _volatility() -> list[FeatureDef]:
    out = [
        FeatureDef(
            "trange",
            "volatility",
            "max(high - low, |high - close[t-1]|, |low - close[t-1]|)",
            1,
            {},
            TalibRef("TRANGE", {}, 0, _HLC),
        ),
        FeatureDef(
            "atr_14",
            "volatility",
            "Wilder average of trange over 14, seeded by the mean of trange[1..14]",
            ATR_PERIOD,
            {"timeperiod": ATR_PERIOD},
            TalibRef("ATR", {"timeperiod": ATR_PERIOD}, 0, _HLC),
        ),
        FeatureDef(
            "natr_14",
            "volatility",
            "100 * atr_14 / close",
            ATR_PERIOD,
            {"timeperiod": ATR_PERIOD},
            TalibRef("NATR", {"timeperiod": ATR_PERIOD}, 0, _HLC),
        ),
    ]
    bb_doc = (
        "population std of close over 20 (TA-Lib's cancellation-free shifted-sum variance, "
        "re-anchored every 640 bars; exactly 0 on a flat window)"
    )
    for i, name in enumerate(("bb_upper", "bb_middle", "bb_lower")):
        formula = ("sma_20 + 2 * std20", "sma_20", "sma_20 - 2 * std20")[i]
        out.append(
            FeatureDef(
                name,
                "volatility",
                f"{formula}; std20 = {bb_doc}",
                BB_PERIOD - 1,
                dict(_BB_KW),
                TalibRef("BBANDS", dict(_BB_KW), i, _C),
            )
        )
    out += [
        FeatureDef(
            "bb_pctb",
            "volatility",
            "(close - bb_lower) / (bb_upper - bb_lower); 0 when the bands coincide",
            BB_PERIOD - 1,
            dict(_BB_KW),
        ),
        FeatureDef(
            "bb_width",
            "volatility",
            "(bb_upper - bb_lower) / bb_middle",
            BB_PERIOD - 1,
            dict(_BB_KW),
        ),
    ]
    for w in LOGRET_STD_WINDOWS:
        out.append(
            FeatureDef(
                f"logret_std_{w}",
                "volatility",
                f"population std of logret_pct over {w} (TA-Lib STDDEV: shifted-sum variance, "
                "exactly 0 on a flat window)",
                w,
                {"timeperiod": w, "nbdev": 1.0},
                TalibRef("STDDEV", {"timeperiod": w, "nbdev": 1.0}, 0, ("logret_pct",)),
            )
        )
    w = RANGE_VOL_WINDOW
    out += [
        FeatureDef(
            "parkinson_20",
            "volatility",
            f"sqrt(mean{w}((100 ln(h/l))^2) / (4 ln 2)), percent per bar",
            w - 1,
            {"window": w},
        ),
        FeatureDef(
            "garman_klass_20",
            "volatility",
            f"sqrt(max(0, mean{w}(0.5 (100 ln(h/l))^2 - (2 ln 2 - 1) (100 ln(c/o))^2)))",
            w - 1,
            {"window": w},
        ),
    ]
    return out


def _volume() -> list[FeatureDef]:
    out = [
        FeatureDef(
            "obv",
            "volume",
            "obv[0] = volume[0]; +volume on an up close, -volume on a down close",
            0,
            {},
            TalibRef("OBV", {}, 0, ("close", "volume")),
        ),
        FeatureDef(
            "ad",
            "volume",
            "cumulative ((c - l) - (h - c)) / (h - l) * volume; bars with h == l add 0",
            0,
            {},
            TalibRef("AD", {}, 0, _HLCV),
        ),
        FeatureDef(
            "mfi_14",
            "volume",
            "100 * pos_flow14 / (pos_flow14 + neg_flow14), flow = tp * volume signed by "
            "the change of tp (|change| <= 1e-14 * (|tp| + |prev tp|) is no change); 0 when the "
            "window carries no flow (zero volume)",
            MFI_PERIOD,
            {"timeperiod": MFI_PERIOD},
            TalibRef("MFI", {"timeperiod": MFI_PERIOD}, 0, _HLCV),
        ),
        FeatureDef(
            "volume_z_20",
            "volume",
            "(volume - mean20(volume)) / std20(volume), std20 as bb_upper's variance; 0 when "
            "std20 is 0 (flat or zero volume)",
            VOLUME_Z_WINDOW - 1,
            {"window": VOLUME_Z_WINDOW},
        ),
        FeatureDef(
            "vwap_session",
            "volume",
            "sum(tp * volume) / sum(volume) since the session open, tp = (h+l+c)/3; the "
            "plain mean of tp when the session's volume is 0 (index data)",
            0,
            {},
        ),
        FeatureDef("dist_vwap", "volume", "close / vwap_session - 1", 0, {}),
    ]
    for w in VOLUME_RATIO_WINDOWS:
        out.append(
            FeatureDef(
                f"vol_ratio_{w}",
                "volume",
                f"volume / mean{w}(volume); 0 when the mean is 0",
                w - 1,
                {"window": w},
            )
        )
    return out


def _candle() -> list[FeatureDef]:
    return [
        FeatureDef("body_ratio", "candle", "(close - open) / (high - low); 0 when high == low", 0),
        FeatureDef(
            "upper_wick_ratio",
            "candle",
            "(high - max(open, close)) / (high - low); 0 when high == low",
            0,
        ),
        FeatureDef(
            "lower_wick_ratio",
            "candle",
            "(min(open, close) - low) / (high - low); 0 when high == low",
            0,
        ),
        FeatureDef("range_pct", "candle", "100 * (high - low) / close", 0),
        FeatureDef("gap_pct", "candle", "100 * (open / close[t-1] - 1)", 1),
    ]


def _returns() -> list[FeatureDef]:
    return [
        FeatureDef(f"logret_lag_{k}", "returns", f"logret_pct[t-{k}]", k + 1, {"lag": k})
        for k in LOGRET_LAGS
    ]


def _session() -> list[FeatureDef]:
    m = SESSION_MINUTES
    return [
        FeatureDef(
            "mos_sin", "session", f"sin(2 pi * minute_of_session / {m})", 0, {"session_minutes": m}
        ),
        FeatureDef(
            "mos_cos", "session", f"cos(2 pi * minute_of_session / {m})", 0, {"session_minutes": m}
        ),
        FeatureDef("day_of_week", "session", "IST weekday of the bar, Monday = 0", 0),
        FeatureDef(
            "bars_since_open",
            "session",
            "bars of this symbol since the session's first bar (0 on it)",
            0,
        ),
        FeatureDef("dist_session_high", "session", "close / max(high since open) - 1", 0),
        FeatureDef("dist_session_low", "session", "close / min(low since open) - 1", 0),
        FeatureDef(
            "session_return", "session", "100 * ln(close / open of the session's first bar)", 0
        ),
    ]


FEATURES: tuple[FeatureDef, ...] = tuple(
    _trend() + _momentum() + _volatility() + _volume() + _candle() + _returns() + _session()
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
N_FEATURES = len(FEATURES)
COLUMN: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
MAX_WARMUP = max(f.warmup for f in FEATURES)

if N_FEATURES != 89 or len(COLUMN) != N_FEATURES:  # pragma: no cover - a broken edit
    raise RuntimeError(f"feature spec must hold 89 unique names, holds {N_FEATURES}")


def _canonical() -> dict[str, Any]:
    """Everything that defines the features (not the hash itself), in column order."""
    return {
        "version": SPEC_VERSION,
        "n_features": N_FEATURES,
        "derived_inputs": dict(DERIVED_INPUTS),
        "features": [
            {
                "name": f.name,
                "index": i,
                "group": f.group,
                "formula": f.formula,
                "params": dict(f.params),
                "warmup": f.warmup,
                "talib": f.talib.as_json() if f.talib else None,
            }
            for i, f in enumerate(FEATURES)
        ],
    }


def _hash(canonical: dict[str, Any]) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


SPEC_HASH = _hash(_canonical())


def spec_as_json() -> dict[str, Any]:
    """The spec as ``trader features spec --json`` prints it: canonical content plus its hash."""
    doc = _canonical()
    doc["hash"] = SPEC_HASH
    doc["max_warmup"] = MAX_WARMUP
    return doc
