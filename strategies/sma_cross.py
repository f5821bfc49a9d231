"""The reference strategy: long-only simple-moving-average crossover.

Enter long when fast[t-1] < slow[t-1] and fast[t] > slow[t] (and flat); exit when
fast[t-1] > slow[t-1] and fast[t] < slow[t] (and long). Averages are incremental per symbol,
updated for all symbols of a slice in one numba call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from engine.events import BarSlice, Side
from strategies.base import Strategy, StrategyContext, StrategyParams


@dataclass(frozen=True)
class SmaCrossParams(StrategyParams):
    fast: int = 10
    slow: int = 30
    qty: int = 1

    def validate(self) -> None:
        if self.fast < 1:
            raise ValueError(f"parameter fast={self.fast} must be ≥ 1")
        if self.slow <= self.fast:
            raise ValueError(f"parameter slow={self.slow} must be greater than fast={self.fast}")
        if self.qty < 1:
            raise ValueError(f"parameter qty={self.qty} must be ≥ 1")


# Per-symbol rolling-mean state, columns of ``acc`` (float) and ``cnt`` (int):
SUM, COMP_ADD, COMP_REMOVE = 0, 1, 2  # per window: fast at 0..2, slow at 3..5
PREV_MEAN_FAST, PREV_MEAN_SLOW, LAST_VALUE = 6, 7, 8
N_SEEN, RING_POS, SAME_RUN = 0, 1, 2


@nb.njit(cache=True, nogil=True, inline="always")
def _kahan(acc, s, base, comp, value):  # pragma: no cover - numba
    y = value - acc[s, base + comp]
    t = acc[s, base + SUM] + y
    acc[s, base + comp] = t - acc[s, base + SUM] - y
    acc[s, base + SUM] = t


@nb.njit(cache=True, nogil=True)
def _sma_cross_step(sid, close, ring, acc, cnt, fast, slow, signal):  # pragma: no cover - numba
    """Update both moving averages for each symbol; signal +1 cross up, -1 cross down, else 0.

    The window mean is computed the way pandas' ``rolling(n).mean()`` computes it — Kahan-
    compensated removes then adds, sum / n, and a window of identical values yielding that value
    exactly — so on 0.05-tick prices, where the two averages are often *exactly* equal, ties are
    decided bit for bit as in the reference research tools (backtesting.py on pandas).
    Returns the number of crosses, or -1 (nothing changed) if a sid exceeds the state capacity.
    """
    capacity = cnt.shape[0]
    for k in range(sid.shape[0]):
        if sid[k] >= capacity:
            return -1
    n_cross = 0
    for k in range(sid.shape[0]):
        s = sid[k]
        c = close[k]
        p = cnt[s, RING_POS]
        n = cnt[s, N_SEEN] + 1
        cnt[s, N_SEEN] = n
        if n > slow:
            _kahan(acc, s, 3, COMP_REMOVE, -ring[s, p])
        if n > fast:
            _kahan(acc, s, 0, COMP_REMOVE, -ring[s, (p - fast) % slow])
        ring[s, p] = c
        cnt[s, RING_POS] = (p + 1) % slow
        _kahan(acc, s, 3, COMP_ADD, c)
        _kahan(acc, s, 0, COMP_ADD, c)
        if n > 1 and c == acc[s, LAST_VALUE]:
            cnt[s, SAME_RUN] += 1
        else:
            cnt[s, SAME_RUN] = 1
            acc[s, LAST_VALUE] = c
        signal[k] = 0
        if n < slow:
            continue
        run = cnt[s, SAME_RUN]
        f = c if run >= fast else acc[s, SUM] / fast
        w = c if run >= slow else acc[s, 3 + SUM] / slow
        if n > slow:
            pf = acc[s, PREV_MEAN_FAST]
            pw = acc[s, PREV_MEAN_SLOW]
            if pf < pw and f > w:
                signal[k] = 1
                n_cross += 1
            elif pf > pw and f < w:
                signal[k] = -1
                n_cross += 1
        acc[s, PREV_MEAN_FAST] = f
        acc[s, PREV_MEAN_SLOW] = w
    return n_cross


class SmaCross(Strategy):
    name = "sma_cross"
    Params = SmaCrossParams

    def __init__(self, params: SmaCrossParams | None = None) -> None:
        super().__init__(params)
        p: SmaCrossParams = self.params  # type: ignore[assignment]
        self._fast, self._slow, self._qty = p.fast, p.slow, p.qty
        self._ring = np.zeros((0, self._slow))
        self._acc = np.zeros((0, 9))
        self._cnt = np.zeros((0, 3), dtype=np.int64)
        self._alloc(64)

    def _alloc(self, capacity: int) -> None:
        """(Re)allocate per-symbol state for ``capacity`` sids, keeping what exists."""
        ring = np.zeros((capacity, self._slow))
        acc = np.zeros((capacity, 9))
        cnt = np.zeros((capacity, 3), dtype=np.int64)
        n = self._ring.shape[0]
        ring[:n], acc[:n], cnt[:n] = self._ring, self._acc, self._cnt
        self._ring, self._acc, self._cnt = ring, acc, cnt
        self._signal = np.zeros(capacity, dtype=np.int8)

    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None:
        sid, close = bars.sid, bars.close
        crosses = _sma_cross_step(
            sid, close, self._ring, self._acc, self._cnt, self._fast, self._slow, self._signal
        )
        if crosses < 0:
            self._alloc(max(int(sid.max()) + 1, 2 * self._ring.shape[0]))
            crosses = _sma_cross_step(
                sid, close, self._ring, self._acc, self._cnt, self._fast, self._slow, self._signal
            )
        if not crosses:
            return
        for k in np.flatnonzero(self._signal[: sid.shape[0]]):
            symbol = bars.symbols[k]
            held = ctx.position(symbol) + ctx.pending(symbol)
            if self._signal[k] > 0 and held == 0:
                ctx.submit(symbol, Side.BUY, self._qty, reason="fast crossed above slow")
            elif self._signal[k] < 0 and held > 0:
                ctx.submit(symbol, Side.SELL, held, reason="fast crossed below slow")
