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
Size is fixed notional (``notional`` / price) or volatility-targeted (``notional`` ×
``vol_target`` / σ, capped at ``max_scale`` × ``notional``), where σ is an EWMA of one-bar log
returns within the session. Every target goes out as an intent, through the risk chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from config.sessions import local_minute, minute_of_day
from engine.data.loader import LoadedBars
from engine.events import BarSlice, FeatureSlice
from models.checkpoint import load_bundle
from models.dataset import FeatureTable
from models.errors import SpecMismatchError
from models.inference import OnlinePredictor, Predictor
from models.network import BUY, SELL
from models.precision import PRECISIONS, require_precision
from models.predictions import PredictionTable, cached_predictions
from strategies.base import Strategy, StrategyContext, StrategyParams

SIZINGS = ("notional", "volatility")
WARM_BATCH = 128  # windows in the start-up forward pass (a 97-symbol universe fits)


@dataclass(frozen=True)
class ModelStrategyParams(StrategyParams):
    model: str = ""  # checkpoint path; several comma-separated → averaged ensemble
    entry_threshold: float = 0.5
    exit_threshold: float = 0.4
    allow_short: bool = True
    sizing: str = "notional"  # notional | volatility
    notional: float = 100_000.0  # rupees per position (the base under volatility sizing)
    vol_target: float = 0.001  # volatility sizing: target one-bar σ of the position / notional
    vol_halflife: int = 30  # bars, EWMA of squared returns
    max_scale: float = 2.0  # volatility sizing: at most max_scale × notional
    last_entry: str = "15:10"  # IST; no new exposure after this bar close
    device: str = "cpu"
    threads: int = 0  # 0: leave torch's setting
    precision: str = "fp32"  # fp32 | bf16
    cache_dir: str = ""  # backtest prediction cache; "" keeps predictions in memory only

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
        if self.vol_halflife < 1:
            raise ValueError(f"parameter vol_halflife={self.vol_halflife} must be ≥ 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"parameter precision={self.precision!r} must be one of {PRECISIONS}")
        if self.device not in {"cpu", "cuda"}:
            raise ValueError(f"parameter device={self.device!r} must be cpu or cuda")
        if self.device == "cpu":  # refused here, before a run is created (CUDA: at load)
            require_precision(self.precision, self.device)
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
    cur = np.sign(held).astype(np.int64)
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
    name = "model"
    Params: ClassVar[type[StrategyParams]] = ModelStrategyParams
    wants_features = True

    _close: np.ndarray  # float64[capacity]: last close per sid
    _var: np.ndarray  # float64[capacity]: EWMA of squared one-bar log returns
    _n_ret: np.ndarray  # int64[capacity]: returns seen

    def __init__(
        self, params: ModelStrategyParams | None = None, predictor: Predictor | None = None
    ) -> None:
        super().__init__(params)
        self.p: ModelStrategyParams = self.params  # type: ignore[assignment]
        self._last_entry_minute = parse_clock(self.p.last_entry)
        self._predictor = predictor
        self._online: OnlinePredictor | None = None
        self._ahead: PredictionTable | None = None
        self._table: FeatureTable | None = None
        self._spec_checked = False
        self._bars: BarSlice | None = None
        self._alloc(128)
        self.stats: dict[str, int] = {"predicted": 0, "intents": 0, "cache_hit": 0}

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

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            paths = self.p.model_paths
            if not paths:
                raise ValueError("parameter model is required: path(s) to model checkpoint(s)")
            # The spec is checked against the feature slices actually arriving (first slice).
            bundles = [load_bundle(path, expected_spec_hash=None) for path in paths]
            self._predictor = Predictor(
                bundles, self.p.device, self.p.threads or None, self.p.precision
            )
        return self._predictor

    def on_start(self, ctx: StrategyContext) -> None:
        # load (and fail) before the first bar, not in the middle of a run; then one throwaway
        # forward pass at full batch size, so the first live decision does not pay for the
        # kernel libraries' lazy set-up (seconds on a CPU, measured as a p99 outlier)
        predictor = self.predictor
        if self._ahead is None:
            predictor.warm_up(WARM_BATCH)

    def prepare_replay(self, bars: LoadedBars, progress: bool = False) -> None:
        from models.feature_source import table_from_loaded_bars

        self._table = table_from_loaded_bars(bars)
        self.prepare_backtest(self._table, progress)

    def report(self) -> dict[str, Any]:
        """The model's calls over the replayed period against the realised labels."""
        if self._ahead is None or self._table is None:
            return {}
        from models.predictions import score_predictions

        label_cfg = self.predictor.bundles[0].label_config
        if label_cfg is None:  # an imported model may not say what it was trained to call
            return {"model_calls": {"note": "the model file records no label config"}}
        return {"model_calls": score_predictions(self._ahead, self._table, label_cfg)}

    def prepare_backtest(self, table: FeatureTable, progress: bool = False) -> bool:
        """Compute (or load cached) predictions for every window of ``table``; True if cached.

        Afterwards feature slices are answered from the table instead of the network.
        """
        predictor = self.predictor
        if table.spec_hash != predictor.spec_hash:
            raise SpecMismatchError("model", predictor.spec_hash, table.spec_hash)
        preds, hit = cached_predictions(
            predictor,
            table,
            Path(self.p.cache_dir) if self.p.cache_dir else None,
            progress=progress,
        )
        self._ahead = preds
        self.stats["cache_hit"] = int(hit)
        return hit

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

    def _probabilities(self, features: FeatureSlice) -> tuple[np.ndarray, np.ndarray]:
        if self._ahead is not None:
            return self._ahead.lookup(features.ts_ns, features.symbols)
        if self._online is None:
            self._online = OnlinePredictor(self.predictor)
        session_open = None
        if self._bars is not None and self._bars.ts_ns == features.ts_ns:
            session_open = self._bars.session_open
        return self._online.update(features.sid, features.values, features.ready, session_open)

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None:
        if not self._spec_checked:
            if features.spec_hash != self.predictor.spec_hash:
                raise SpecMismatchError("model", self.predictor.spec_hash, features.spec_hash)
            self._spec_checked = True
        positions, probs = self._probabilities(features)
        if len(positions) == 0:
            return
        self.stats["predicted"] += len(positions)
        symbols = [features.symbols[k] for k in positions]
        held = np.array([ctx.position(s) + ctx.pending(s) for s in symbols], dtype=np.int64)
        may_enter = local_minute(features.ts_ns) < self._last_entry_minute
        direction = decide(probs, held, self.p, may_enter)
        for j in np.flatnonzero(direction != np.sign(held)):
            sid = int(features.sid[positions[j]])
            qty = 0 if direction[j] == 0 else int(direction[j]) * self._size(sid)
            if direction[j] != 0 and qty == 0:
                if held[j] == 0:
                    continue  # cannot size an entry (price/σ unknown): stay flat
                qty = 0  # cannot size the reversal: close instead
            reason = f"model p(SELL)={probs[j, SELL]:.3f} p(BUY)={probs[j, BUY]:.3f}"
            self.stats["intents"] += 1
            ctx.target(symbols[j], qty, reason=reason)

    def _size(self, sid: int) -> int:
        """Shares for a new position in ``sid`` (0 when it cannot be sized)."""
        price = self._close[sid] if sid < len(self._close) else math.nan
        if not price > 0:
            return 0
        value = self.p.notional
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
        if self._predictor is not None:
            out["model_hash"] = self._predictor.model_hash
            out["members"] = [b.model_hash for b in self._predictor.bundles]
        return out
