"""Bad prints: a bar whose price jumps implausibly far and comes straight back.

One bad bar (prices ×1000, a decimal slip) is enough to mark the equity at millions, read a
93% drawdown and let the risk monitor halt every session after it; nothing else in validation
catches it, since its OHLC are consistent. The rule (settings ``data.max_bar_move_pct``,
default 50, and ``data.outlier_action``, ``drop`` — the bar is dropped and counted as
``outlier_move`` — or ``refuse`` — the file is refused naming the row):

* **Move** between two prices a and b: ``max(a, b) / min(a, b) − 1``, in percent. It is
  symmetric (×2 and ÷2 are both 100%), so a price divided by 1000 is as far as one multiplied.
  A bar's move from a reference price is that of its farthest price (its high or its low).
* **A bad print** is a bar that moves more than the limit from two other bars of the same
  symbol and session whose closes agree with each other (within the limit): for a bar inside
  the session, the bars just before and after it — the price went there and straight back —
  and for the session's first or last bar, the two next to it on its one side. A level that
  persists (a 10–20% circuit move on news, a breakout) has a neighbour at the new level, so it
  is never flagged; neither is a bar whose two reference bars disagree.
* **Within a session only.** Across sessions nothing is compared: an overnight gap, or a split
  or bonus in unadjusted data, is a new level, not a bad print. A session with fewer than
  three bars of a symbol is not judged.
* **Why 50%.** The widest NSE price band is 20% of the previous close, so two prices of one
  stock in one session are at most 1.2 / 0.8 = 1.5× apart, and index circuit breakers halt the
  market at 10/15/20%. A move beyond that which reverts at once was not a trade; bad prints are
  usually scale errors (×10, ×100, ÷100, ×1000) far beyond it, while genuine big moves stay.
  Lower the limit (e.g. 20) for liquid large caps on 1-minute bars to catch smaller misprints.
* Known gap: two bad bars in a row agree with each other, so neither is flagged.

The live bar feed (``brokers.kite.bar_aggregator``) applies the same move to ticks, against the
symbol's last accepted price in the session (a tick has no next neighbour yet).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T", bound=np.generic)
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def move_pct(a: float, b: float) -> float:
    """The move between two positive prices, in percent: ``max/min − 1`` (symmetric)."""
    return (max(a, b) / min(a, b) - 1.0) * 100.0


def _farthest(high: FloatArray, low: FloatArray, ref: FloatArray) -> FloatArray:
    """A bar's move from ``ref`` as a fraction (its high above or its low below; NaN: no ref)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.maximum(high / ref, ref / low) - 1.0
    return out


def _agree(a: FloatArray, b: FloatArray, limit: float) -> BoolArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out: BoolArray = (np.maximum(a / b, b / a) - 1.0) <= limit
    return out


def _shift(values: npt.NDArray[_T], by: int, fill: float) -> npt.NDArray[_T]:
    """``values`` moved ``by`` places (positive: element i holds i-by), ``fill`` where empty."""
    out = np.empty_like(values)
    if by > 0:
        out[:by], out[by:] = fill, values[:-by]
    else:
        out[by:], out[:by] = fill, values[-by:]
    return out


def outlier_mask(
    session_key: npt.NDArray[np.int64],
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    max_move_pct: float,
) -> BoolArray:
    """Which bars are bad prints (module doc). Rows are sorted by (symbol, time) and
    ``session_key`` is equal exactly for the bars of one symbol in one session; prices are
    validated (positive, finite, low ≤ open/close ≤ high)."""
    limit = max_move_pct / 100.0
    n = len(close)
    if n < 3:
        return np.zeros(n, dtype=bool)
    key_prev, key_next = _shift(session_key, 1, -1), _shift(session_key, -1, -1)
    c_prev = _shift(close, 1, np.nan)
    c_next = _shift(close, -1, np.nan)
    inside = (key_prev == session_key) & (key_next == session_key)
    spike: BoolArray = (
        inside
        & (_farthest(high, low, c_prev) > limit)
        & (_farthest(high, low, c_next) > limit)
        & _agree(c_prev, c_next, limit)
    )
    # the session's first and last bars, judged against the two (non-spike) bars on their side
    keep = np.flatnonzero(~spike)
    k, h, lo, c = session_key[keep], high[keep], low[keep], close[keep]
    edge = np.zeros(len(keep), dtype=bool)
    for step in (1, -1):  # 1: a session's first bar and the two after it; -1: its last
        k1, k2 = _shift(k, -step, -1), _shift(k, -2 * step, -1)
        c1, c2 = _shift(c, -step, np.nan), _shift(c, -2 * step, np.nan)
        at_edge = _shift(k, step, -1) != k
        edge |= (
            at_edge
            & (k1 == k)
            & (k2 == k)
            & (_farthest(h, lo, c1) > limit)
            & (_farthest(h, lo, c2) > limit)
            & _agree(c1, c2, limit)
        )
    spike[keep[edge]] = True
    return spike
