"""Training labels: SELL / HOLD / BUY from the forward return over a horizon of bars.

The label of bar t is ``close[t+h] / close[t] - 1`` compared with a threshold. It looks forward
by design (it is what the model learns to predict), but only through ``close[t+h]``: the window
of features that predicts it ends at t, and the volatility that scales a threshold uses returns
up to t only. A label never reaches across two symbols, and by default not across two sessions
(an intraday position is squared off at the close, so an overnight move is not what it earns).
Bars whose label cannot be formed are -1 and never become training samples.

Rows are expected sorted by (symbol, time), one symbol's rows contiguous — the layout of
``FeatureTable``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from models.network import BUY, CLASS_NAMES, HOLD, SELL

UNLABELED = -1
LABEL_MODES = ("fixed", "volatility")


@dataclass(frozen=True)
class LabelConfig:
    """How labels are formed; stored with every checkpoint.

    ``fixed``: BUY if the return > ``threshold``, SELL if < -``threshold``, else HOLD.
    ``volatility``: the threshold is ``vol_multiplier × σ_t × √horizon`` where σ_t is the standard
    deviation of the last ``vol_window`` one-bar log returns up to and including bar t (returns
    across a session boundary are left out unless ``cross_sessions``). The defaults (30 minutes
    at 5-minute bars, 0.3 σ√h) split NSE index bars of 2021 into roughly equal thirds.
    """

    horizon: int = 6
    mode: str = "volatility"
    threshold: float = 0.001
    vol_window: int = 60
    vol_multiplier: float = 0.3
    cross_sessions: bool = False

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"label config: horizon must be ≥ 1 bar, got {self.horizon}")
        if self.mode not in LABEL_MODES:
            raise ValueError(f"label config: mode {self.mode!r} must be one of {LABEL_MODES}")
        if self.mode == "fixed" and not self.threshold >= 0:
            raise ValueError(f"label config: threshold must be ≥ 0, got {self.threshold}")
        if self.mode == "volatility" and (self.vol_window < 2 or not self.vol_multiplier >= 0):
            raise ValueError(
                "label config: volatility mode needs vol_window ≥ 2 and vol_multiplier ≥ 0, got "
                f"{self.vol_window}, {self.vol_multiplier}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LabelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"label config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**raw)


def _group_starts(groups: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its run of equal ``groups`` values."""
    n = len(groups)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = groups[1:] != groups[:-1]
    starts = np.flatnonzero(is_start)
    run = np.cumsum(is_start) - 1
    return starts[run]


def trailing_volatility(
    close: np.ndarray, symbol_codes: np.ndarray, session_ids: np.ndarray, cfg: LabelConfig
) -> np.ndarray:
    """σ of one-bar log returns over the last ``vol_window`` bars up to t (NaN while too few)."""
    n = len(close)
    ret = np.full(n, np.nan)
    if n > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            ret[1:] = np.log(close[1:] / close[:-1])
        ret[1:][symbol_codes[1:] != symbol_codes[:-1]] = np.nan
        if not cfg.cross_sessions:
            ret[1:][session_ids[1:] != session_ids[:-1]] = np.nan
    valid = np.isfinite(ret)
    r = np.where(valid, ret, 0.0)
    cs1 = np.concatenate([[0.0], np.cumsum(r)])
    cs2 = np.concatenate([[0.0], np.cumsum(r * r)])
    cnt = np.concatenate([[0], np.cumsum(valid)])
    t = np.arange(n)
    start = np.maximum(t - cfg.vol_window + 1, _group_starts(symbol_codes))
    k = cnt[t + 1] - cnt[start]
    s1 = cs1[t + 1] - cs1[start]
    s2 = cs2[t + 1] - cs2[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (s2 - s1 * s1 / k) / (k - 1)
    sigma = np.sqrt(np.maximum(var, 0.0))
    sigma[k < max(2, cfg.vol_window // 2)] = np.nan
    return sigma


def make_labels(
    close: np.ndarray,
    symbol_codes: np.ndarray,
    session_ids: np.ndarray,
    cfg: LabelConfig,
) -> np.ndarray:
    """int8 labels per row (SELL=0, HOLD=1, BUY=2, -1 where no label can be formed)."""
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    if not (len(symbol_codes) == len(session_ids) == n):
        raise ValueError(
            f"labels: close ({n}), symbol codes ({len(symbol_codes)}) and session ids "
            f"({len(session_ids)}) must have the same length"
        )
    labels = np.full(n, UNLABELED, dtype=np.int8)
    h = cfg.horizon
    if n <= h:
        return labels
    t = np.arange(n - h)
    fwd = forward_returns(close, symbol_codes, session_ids, cfg)[t]
    ok = np.isfinite(fwd)
    if cfg.mode == "fixed":
        thr = np.full(len(t), cfg.threshold)
    else:
        sigma = trailing_volatility(close, symbol_codes, session_ids, cfg)[t]
        thr = cfg.vol_multiplier * sigma * np.sqrt(h)
    ok &= np.isfinite(fwd) & np.isfinite(thr) & (close[t] > 0)
    cls = np.full(len(t), HOLD, dtype=np.int8)
    cls[fwd > thr] = BUY
    cls[fwd < -thr] = SELL
    labels[t[ok]] = cls[ok]
    return labels


def forward_returns(
    close: np.ndarray,
    symbol_codes: np.ndarray,
    session_ids: np.ndarray,
    cfg: LabelConfig,
) -> np.ndarray:
    """The return a label is formed from, ``close[t+h] / close[t] - 1`` per row (NaN where the
    horizon leaves the symbol, or the session unless ``cross_sessions``): also what a model's
    signal is correlated with (information coefficient) in a walk-forward study."""
    close = np.asarray(close, dtype=np.float64)
    n, h = len(close), cfg.horizon
    out = np.full(n, np.nan)
    if n <= h:
        return out
    t = np.arange(n - h)
    ok = symbol_codes[t + h] == symbol_codes[t]
    if not cfg.cross_sessions:
        ok &= session_ids[t + h] == session_ids[t]
    with np.errstate(divide="ignore", invalid="ignore"):
        fwd = close[t + h] / close[t] - 1.0
    out[t[ok]] = fwd[ok]
    return out


def label_distribution(labels: np.ndarray) -> dict[str, Any]:
    """Counts and fractions per class (over labeled rows) plus the unlabeled count."""
    labels = np.asarray(labels)
    counts = {name: int(np.sum(labels == i)) for i, name in enumerate(CLASS_NAMES)}
    total = sum(counts.values())
    return {
        "counts": counts,
        "fractions": {k: (v / total if total else 0.0) for k, v in counts.items()},
        "labeled": total,
        "unlabeled": int(np.sum(labels == UNLABELED)),
    }


def format_distribution(dist: dict[str, Any]) -> str:
    parts = [f"{k} {v} ({dist['fractions'][k]:.1%})" for k, v in dist["counts"].items()]
    return f"labels: {', '.join(parts)}; unlabeled {dist['unlabeled']}"
