"""The reference strategy: long-only simple-moving-average crossover.

Enter long when fast[t-1] < slow[t-1] and fast[t] > slow[t] (and flat); exit when
fast[t-1] > slow[t-1] and fast[t] < slow[t] (and long). An entry buys ``qty`` shares, or with
``sizing=notional`` / ``sizing=fraction`` a rupee amount / a fraction of equity at the
crossing bar's close (``strategies/sizing.py``). Averages are incremental per symbol,
updated for all symbols of a slice in one numba call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from engine.events import BarSlice, Side
from strategies.base import Strategy, StrategyContext, StrategyParams
from strategies.sizing import check_sizing, shares


@dataclass(frozen=True)
class SmaCrossParams(StrategyParams):
    fast: int = 10
    slow: int = 30
    qty: int = 1  # shares per entry (sizing=qty)
    sizing: str = "qty"  # qty | notional (rupees per position) | fraction (of equity)
    notional: float = 100_000.0  # sizing=notional: rupees per position
    fraction: float = 0.1  # sizing=fraction: share of current equity per position

    def validate(self) -> None:
        if self.fast < 1:
            raise ValueError(f"parameter fast={self.fast} must be ≥ 1")
        if self.slow <= self.fast:
            raise ValueError(f"parameter slow={self.slow} must be greater than fast={self.fast}")
        check_sizing(self.sizing, self.qty, self.notional, self.fraction)


# Per-symbol state: one float64 row per sid (one array keeps the kernel call cheap — numba
# unboxes each array argument on every call). Counters are stored as floats: exact below 2**53.
SUM, COMP_ADD, COMP_REMOVE = 0, 1, 2  # per window: fast at 0..2, slow at 3..5
PREV_MEAN_FAST, PREV_MEAN_SLOW, LAST_VALUE = 6, 7, 8
N_SEEN, RING_POS, SAME_RUN = 9, 10, 11
RING = 12  # the last ``slow`` closes start here


@nb.njit(cache=True, nogil=True, inline="always")
def _kahan(  # pragma: no cover - numba
    st: np.ndarray, s: int, base: int, comp: int, value: float
) -> None:
    y = value - st[s, base + comp]
    t = st[s, base + SUM] + y
    st[s, base + comp] = t - st[s, base + SUM] - y
    st[s, base + SUM] = t


@nb.njit(cache=True, nogil=True)
def _sma_cross_step(  # pragma: no cover - numba
    sid: np.ndarray, close: np.ndarray, st: np.ndarray, fast: int, slow: int, signal: np.ndarray
) -> int:
    """Update both moving averages for each symbol; signal +1 cross up, -1 cross down, else 0.

    The window mean is computed the way pandas' ``rolling(n).mean()`` computes it — Kahan-
    compensated removes then adds, sum / n, and a window of identical values yielding that value
    exactly — so on 0.05-tick prices, where the two averages are often *exactly* equal, ties are
    decided bit for bit as in the reference research tools (backtesting.py on pandas).
    Returns the number of crosses, or -1 (nothing changed) if a sid exceeds the state capacity.
    """
    capacity = st.shape[0]
    for k in range(sid.shape[0]):
        if sid[k] >= capacity:
            return -1
    n_cross = 0
    for k in range(sid.shape[0]):
        s = sid[k]
        c = close[k]
        p = int(st[s, RING_POS])
        n = int(st[s, N_SEEN]) + 1
        st[s, N_SEEN] = n
        if n > slow:
            _kahan(st, s, 3, COMP_REMOVE, -st[s, RING + p])
        if n > fast:
            _kahan(st, s, 0, COMP_REMOVE, -st[s, RING + (p - fast) % slow])
        st[s, RING + p] = c
        st[s, RING_POS] = (p + 1) % slow
        _kahan(st, s, 3, COMP_ADD, c)
        _kahan(st, s, 0, COMP_ADD, c)
        if n > 1 and c == st[s, LAST_VALUE]:
            st[s, SAME_RUN] += 1
        else:
            st[s, SAME_RUN] = 1
            st[s, LAST_VALUE] = c
        signal[k] = 0
        if n < slow:
            continue
        run = st[s, SAME_RUN]
        f = c if run >= fast else st[s, SUM] / fast
        w = c if run >= slow else st[s, 3 + SUM] / slow
        if n > slow:
            pf = st[s, PREV_MEAN_FAST]
            pw = st[s, PREV_MEAN_SLOW]
            if pf < pw and f > w:
                signal[k] = 1
                n_cross += 1
            elif pf > pw and f < w:
                signal[k] = -1
                n_cross += 1
        st[s, PREV_MEAN_FAST] = f
        st[s, PREV_MEAN_SLOW] = w
    return n_cross


class SmaCross(Strategy):
    """Long-only moving-average crossover: buy when fast crosses above slow (``qty`` shares,
    or a rupee amount or fraction of equity by ``sizing``), sell on the cross back (the
    reference strategy, held bit for bit to backtesting.py)."""

    name = "sma_cross"
    Params = SmaCrossParams

    def __init__(self, params: SmaCrossParams | None = None) -> None:
        super().__init__(params)
        p: SmaCrossParams = self.params  # type: ignore[assignment]
        self.p = p
        self._fast, self._slow = p.fast, p.slow
        self._state = np.zeros((0, RING + self._slow))
        self._alloc(64)

    def _alloc(self, capacity: int) -> None:
        """(Re)allocate per-symbol state for ``capacity`` sids, keeping what exists."""
        state = np.zeros((capacity, RING + self._slow))
        state[: self._state.shape[0]] = self._state
        self._state = state
        self._signal = np.zeros(capacity, dtype=np.int8)

    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None:
        sid, close = bars.sid, bars.close
        crosses = _sma_cross_step(sid, close, self._state, self._fast, self._slow, self._signal)
        if crosses < 0:
            self._alloc(max(int(sid.max()) + 1, 2 * self._state.shape[0]))
            crosses = _sma_cross_step(sid, close, self._state, self._fast, self._slow, self._signal)
        if not crosses:
            return
        for k in np.flatnonzero(self._signal[: sid.shape[0]]):
            symbol = bars.symbols[k]
            held = ctx.position(symbol) + ctx.pending(symbol)
            if self._signal[k] > 0 and held == 0:
                p = self.p
                qty = shares(p.sizing, p.qty, p.notional, p.fraction, float(close[k]), ctx.equity())
                if qty > 0:
                    ctx.submit(symbol, Side.BUY, qty, reason="fast crossed above slow")
            elif self._signal[k] < 0 and held > 0:
                ctx.submit(symbol, Side.SELL, held, reason="fast crossed below slow")
