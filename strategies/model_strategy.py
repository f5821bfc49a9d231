"""The model strategy: class probabilities → position targets, one position per symbol.

Each feature slice yields SELL/HOLD/BUY probabilities for the symbols whose 60-bar window is
complete (live: ring buffers + one batched forward pass; backtest: looked up from predictions
computed ahead in large batches, see ``prepare_backtest``). Both paths feed the same
``decide`` function, so they take the same decisions.

Rules (per symbol, on the position including orders still pending):
- flat: go long when P(BUY) ≥ ``entry_threshold`` and P(BUY) > P(SELL); go short on the mirror
  condition when ``allow_short``;
- long: reverse to short on a short signal (flat if shorting is off); close when
  P(BUY) < ``exit_threshold``; short is the mirror;
- no new exposure after ``last_entry`` (IST) — the square-off closes positions at 15:20.
Size is fixed notional (``notional`` / price), a fraction of current equity (``fraction`` ×
equity / price) or volatility-targeted (``notional`` ×
``vol_target`` / σ, capped at ``max_scale`` × ``notional``), where σ is an EWMA of one-bar log
returns within the session. Every target goes out as an intent, through the risk chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import time
from typing import Any, ClassVar

import numpy as np

from config.sessions import local_minute, minute_of_day
from engine.events import BarSlice, FeatureSlice
from engine.features.spec import SpecMismatchError
from engine.ports import BUY, SELL, PredictorPort
from strategies.base import Strategy, StrategyContext, StrategyParams

SIZINGS = ("notional", "fraction", "volatility")


@dataclass(frozen=True)
class ModelStrategyParams(StrategyParams):
    model: str = ""  # checkpoint path; several comma-separated → averaged ensemble
    entry_threshold: float = 0.5
    exit_threshold: float = 0.4
    allow_short: bool = True
    sizing: str = "notional"  # notional | fraction | volatility
    notional: float = 100_000.0  # rupees per position (the base under volatility sizing)
    fraction: float = 0.1  # sizing=fraction: share of current equity per position
    vol_target: float = 0.001  # volatility sizing: target one-bar σ of the position / notional
    vol_halflife: int = 30  # bars, EWMA of squared returns
    max_scale: float = 2.0  # volatility sizing: at most max_scale × notional
    last_entry: str = "15:10"  # IST; no new exposure after this bar close
    # how the app layer builds the predictor (precision is checked there: models/precision.py)
    device: str = "cpu"
    threads: int = 0  # 0: leave torch's setting
    precision: str = "fp32"  # fp32 | bf16
    # replay prediction cache: "" is $TRADER_HOME/cache/predictions, "off" keeps them in memory
    cache_dir: str = ""

    def validate(self) -> None:
        if not 0.0 <= self.exit_threshold <= 1.0 or not 0.0 < self.entry_threshold <= 1.0:
            raise ValueError("parameters entry_threshold and exit_threshold must be in [0, 1]")
        if self.exit_threshold > self.entry_threshold:
            raise ValueError(
                f"parameter exit_threshold={self.exit_threshold} must not exceed "
                f"entry_threshold={self.entry_threshold}"
            )
        if self.sizing not in SIZINGS:
            raise ValueError(f"parameter sizing={self.sizing!r} must be one of {SIZINGS}")
        if not self.notional > 0 or not self.vol_target > 0 or not self.max_scale > 0:
            raise ValueError("parameters notional, vol_target and max_scale must be > 0")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"parameter fraction={self.fraction} must be in (0, 1] (of equity)")
        if self.vol_halflife < 1:
            raise ValueError(f"parameter vol_halflife={self.vol_halflife} must be ≥ 1")
        if self.device not in {"cpu", "cuda"}:
            raise ValueError(f"parameter device={self.device!r} must be cpu or cuda")
        parse_clock(self.last_entry)

    @property
    def model_paths(self) -> list[str]:
        return [p.strip() for p in self.model.split(",") if p.strip()]


def parse_clock(text: str) -> int:
    """'15:10' → minute of the day; ValueError naming the text."""
    try:
        hh, mm = text.strip().split(":")
        return minute_of_day(time(int(hh), int(mm)))
    except ValueError:
        raise ValueError(f"parameter last_entry={text!r} must look like HH:MM") from None


def decide(
    probs: np.ndarray, held: np.ndarray, params: ModelStrategyParams, may_enter: bool
) -> np.ndarray:
    """Desired direction per symbol (-1, 0, +1) from probabilities and the current position."""
    p_sell, p_buy = probs[:, SELL], probs[:, BUY]
    want_long = (p_buy >= params.entry_threshold) & (p_buy > p_sell)
    want_short = (p_sell >= params.entry_threshold) & (p_sell > p_buy)
    cur: np.ndarray = np.sign(held).astype(np.int64)
    new = cur.copy()
    flat, long_, short = cur == 0, cur > 0, cur < 0
    reverse = 1 if params.allow_short else 0
    new[flat & want_long] = 1
    if params.allow_short:
        new[flat & want_short] = -1
    new[long_ & want_short] = -reverse
    new[long_ & ~want_short & (p_buy < params.exit_threshold)] = 0
    new[short & want_long] = 1
    new[short & ~want_long & (p_sell < params.exit_threshold)] = 0
    if not may_enter:
        opening = (new != 0) & (new != cur)
        new[opening] = 0  # a reversal becomes a close; a fresh entry becomes nothing
    return new


class ModelStrategy(Strategy):
    """The LSTM + attention classifier's SELL/HOLD/BUY probabilities → one long or short
    position per symbol (``--model CKPT``; thresholds, sizing and shorts by parameter)."""

    name = "model"
    Params: ClassVar[type[StrategyParams]] = ModelStrategyParams
    wants_features = True

    _close: np.ndarray  # float64[capacity]: last close per sid
    _var: np.ndarray  # float64[capacity]: EWMA of squared one-bar log returns
    _n_ret: np.ndarray  # int64[capacity]: returns seen

    def __init__(
        self, params: ModelStrategyParams | None = None, predictor: PredictorPort | None = None
    ) -> None:
        super().__init__(params)
        self.p: ModelStrategyParams = self.params  # type: ignore[assignment]
        self._last_entry_minute = parse_clock(self.p.last_entry)
        self.predictor = predictor
        self._spec_checked = False
        self._bars: BarSlice | None = None
        self._alloc(128)
        self.stats: dict[str, int] = {"predicted": 0, "intents": 0}

    def use_predictor(self, predictor: PredictorPort) -> None:
        """The app layer's choice: a precomputed table for replays, online for paper/live."""
        self.predictor = predictor

    # --- state ---------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "_close", None)
        close = np.full(capacity, np.nan)
        var = np.full(capacity, np.nan)
        n_ret = np.zeros(capacity, dtype=np.int64)
        if old is not None:
            n = len(old)
            close[:n], var[:n], n_ret[:n] = old, self._var, self._n_ret
        self._close, self._var, self._n_ret = close, var, n_ret

    def _require_predictor(self) -> PredictorPort:
        if self.predictor is None:
            raise ValueError(
                "the model strategy has no predictor: give parameter model (checkpoint path)"
            )
        return self.predictor

    def on_start(self, ctx: StrategyContext) -> None:
        # load and warm (and fail) before the first bar, not in the middle of a run
        self._require_predictor().start()

    # --- events --------------------------------------------------------------------------
    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None:
        sid = bars.sid
        if len(sid) and int(sid.max()) >= len(self._close):
            self._alloc(max(int(sid.max()) + 1, 2 * len(self._close)))
        prev = self._close[sid]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = np.log(bars.close / prev)
        use = np.isfinite(ret) & ~bars.session_open
        alpha = 1.0 - 0.5 ** (1.0 / self.p.vol_halflife)
        old = self._var[sid]
        updated = np.where(np.isfinite(old), (1 - alpha) * old + alpha * ret * ret, ret * ret)
        self._var[sid] = np.where(use, updated, old)
        self._n_ret[sid] += use.astype(np.int64)
        self._close[sid] = bars.close
        self._bars = bars

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None:
        predictor = self._require_predictor()
        if not self._spec_checked:
            if features.spec_hash != predictor.spec_hash:
                raise SpecMismatchError(
                    "model", predictor.spec_hash, features.spec_hash,
                    "the model was trained on different features and is refused",
                    "the running feature calculator's",
                )  # fmt: skip
            self._spec_checked = True
        session_open = None
        if self._bars is not None and self._bars.ts_ns == features.ts_ns:
            session_open = self._bars.session_open
        positions, probs = predictor.probabilities(features, session_open)
        if len(positions) == 0:
            return
        self.stats["predicted"] += len(positions)
        symbols = [features.symbols[k] for k in positions]
        held = np.array([ctx.position(s) + ctx.pending(s) for s in symbols], dtype=np.int64)
        may_enter = local_minute(features.ts_ns) < self._last_entry_minute
        direction = decide(probs, held, self.p, may_enter)
        for j in np.flatnonzero(direction != np.sign(held)):
            sid = int(features.sid[positions[j]])
            qty = 0 if direction[j] == 0 else int(direction[j]) * self._size(sid, ctx.equity())
            if direction[j] != 0 and qty == 0:
                if held[j] == 0:
                    continue  # cannot size an entry (price/σ unknown): stay flat
                qty = 0  # cannot size the reversal: close instead
            reason = f"model p(SELL)={probs[j, SELL]:.3f} p(BUY)={probs[j, BUY]:.3f}"
            self.stats["intents"] += 1
            ctx.target(symbols[j], qty, reason=reason)

    def _size(self, sid: int, equity: float) -> int:
        """Shares for a new position in ``sid`` (0 when it cannot be sized)."""
        price = self._close[sid] if sid < len(self._close) else math.nan
        if not price > 0:
            return 0
        value = self.p.notional if self.p.sizing != "fraction" else self.p.fraction * equity
        if self.p.sizing == "volatility":
            if self._n_ret[sid] < 2:
                return 0
            sigma = math.sqrt(self._var[sid])
            if not sigma > 0:
                return 0
            value = self.p.notional * min(self.p.max_scale, self.p.vol_target / sigma)
        return int(value // price)

    def config(self) -> dict[str, Any]:
        out = super().config()
        if self.predictor is not None:
            identity = self.predictor.identity()
            out["model_hash"] = identity["model_hash"]
            out["members"] = identity["members"]
        return out
