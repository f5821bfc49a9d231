"""Positions, cash, P&L and the equity curve at bar resolution.

Accounting: cash moves by ``-side·qty·price - costs`` on every fill; equity = cash + Σ qty·last
close. Realized P&L uses the average-cost method and is net of the costs of the fill that
realizes it (entry costs are carried in the trade record). A round trip — flat → position → flat
— is one ``Trade``; a fill that flips the side closes one trade and opens the next.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import numba as nb
import numpy as np

from engine.bus import EventBus
from engine.events import BarSlice, Fill, PositionChange
from engine.universe import Universe


@nb.njit(cache=True, nogil=True)
def _mark(  # pragma: no cover - numba
    qty: np.ndarray, last: np.ndarray, sid: np.ndarray, close: np.ndarray, out: np.ndarray
) -> bool:
    """Store the slice's closes; market value and gross exposure into ``out``.

    Returns False (nothing changed) if a sid is beyond the arrays: the caller grows them."""
    capacity = last.shape[0]
    for k in range(sid.shape[0]):
        if sid[k] >= capacity:
            return False
    for k in range(sid.shape[0]):
        last[sid[k]] = close[k]
    value = 0.0
    gross = 0.0
    for i in range(qty.shape[0]):
        q = qty[i]
        if q != 0.0:
            v = q * last[i]
            value += v
            gross += abs(v)
    out[0] = value
    out[1] = gross
    return True


@dataclass
class Trade:
    symbol: str
    side: int  # +1 long, -1 short
    qty: int
    entry_ts_ns: int
    entry_price: float
    exit_ts_ns: int = 0
    exit_price: float = float("nan")
    pnl: float = 0.0  # net of all costs of the trade
    costs: float = 0.0
    exit_reason: str = ""

    @property
    def closed(self) -> bool:
        return self.exit_ts_ns != 0


class Portfolio:
    """Subscribes to fills and bar slices; publishes ``PositionChange`` after each fill."""

    def __init__(self, bus: EventBus, universe: Universe, capital: float) -> None:
        self._bus = bus
        self._universe = universe
        self.initial_capital = capital
        self.cash = capital
        self.realized = 0.0
        self.total_costs = 0.0
        self.total_slippage = 0.0
        self.turnover = 0.0
        self._cap = 64
        self._qty = np.zeros(self._cap, dtype=np.int64)
        self._qty_f = np.zeros(self._cap)  # float mirror for the per-bar dot product
        self._avg = np.zeros(self._cap)
        self._last = np.zeros(self._cap)
        self._held = 0
        self._out = np.zeros(2)
        self._unsynced: list[BarSlice] = []
        self.equity = capital
        self.ts_ns = 0
        self.open_trades: dict[str, Trade] = {}
        self.trades: list[Trade] = []
        self.curve_ts: list[int] = []
        self.curve_equity: list[float] = []
        self.curve_gross: list[float] = []

    # ---- reads (the interface strategies and risk get) -------------------------------------
    def qty(self, symbol: str) -> int:
        sid = self._universe.get(symbol)
        return int(self._qty[sid]) if sid is not None and sid < self._cap else 0

    def qty_by_sid(self) -> np.ndarray:
        view = self._qty[: len(self._universe)]
        view.flags.writeable = False
        return view

    def last_price(self, symbol: str) -> float:
        sid = self._universe.get(symbol)
        if sid is None or sid >= self._cap:
            return float("nan")
        self._sync_prices()
        return float(self._last[sid])

    def avg_price(self, symbol: str) -> float:
        sid = self._universe.get(symbol)
        return float(self._avg[sid]) if sid is not None and sid < self._cap else 0.0

    def set_last_price(self, symbol: str, price: float) -> None:
        sid = self._universe.add(symbol)
        self._ensure(sid)
        self._sync_prices()
        self._last[sid] = price

    def gross_exposure(self) -> float:
        self._sync_prices()
        return float(np.abs(self._qty_f) @ self._last)

    def holdings(self) -> dict[str, int]:
        return {self._universe.name(int(s)): int(self._qty[s]) for s in np.flatnonzero(self._qty)}

    # ---- handlers ---------------------------------------------------------------------------
    def _ensure(self, sid: int) -> None:
        if sid < self._cap:
            return
        new = max(self._cap * 2, sid + 1)
        for name in ("_qty", "_qty_f", "_avg", "_last"):
            old = getattr(self, name)
            grown = np.zeros(new, dtype=old.dtype)
            grown[: self._cap] = old
            setattr(self, name, grown)
        self._cap = new

    def on_bars(self, bars: BarSlice) -> None:
        self.ts_ns = bars.ts_ns
        self.curve_ts.append(bars.ts_ns)
        if not self._held:
            # flat: nothing to mark, so only remember the closes (read lazily, see
            # _sync_prices); this is most bars of most strategies and skips a kernel call
            self._unsynced.append(bars)
            if len(self._unsynced) >= 512:
                self._sync_prices()
            self.equity = self.cash
            self.curve_equity.append(self.cash)
            self.curve_gross.append(0.0)
            return
        if self._unsynced:
            self._sync_prices()
        out = self._out
        if not _mark(self._qty_f, self._last, bars.sid, bars.close, out):
            self._ensure(int(bars.sid.max()))
            _mark(self._qty_f, self._last, bars.sid, bars.close, out)
        self.equity = equity = self.cash + float(out[0])
        self.curve_equity.append(equity)
        self.curve_gross.append(float(out[1]))

    def _sync_prices(self) -> None:
        """Apply the closes of slices seen while flat, oldest first; when the newest slice holds
        every symbol of the universe, it alone decides every last price."""
        pending = self._unsynced
        if not pending:
            return
        newest = pending[-1]
        if len(newest.sid) == len(self._universe):
            pending = [newest]
        for bars in pending:
            if len(bars.sid) and int(bars.sid.max()) >= self._cap:
                self._ensure(int(bars.sid.max()))
            self._last[bars.sid] = bars.close
        self._unsynced = []

    def on_fill(self, fill: Fill) -> Awaitable[None] | None:
        realized = self.apply_fill(fill)
        sid = self._universe.sid(fill.symbol)
        return self._bus.deliver(
            PositionChange(
                fill.ts_ns,
                self._bus.next_seq(),
                fill.symbol,
                int(self._qty[sid]),
                float(self._avg[sid]),
                realized,
            )
        )

    def apply_fill(self, fill: Fill) -> float:
        """Book one fill; returns the P&L it realized (net of this fill's costs)."""
        sid = self._universe.add(fill.symbol)
        self._ensure(sid)
        signed = int(fill.side) * fill.qty
        old = int(self._qty[sid])
        new = old + signed
        price = fill.price
        self.cash -= signed * price + fill.costs
        self.total_costs += fill.costs
        self.total_slippage += fill.slippage
        self.turnover += fill.qty * price
        realized = -fill.costs
        closing = min(abs(signed), abs(old)) if old and (old > 0) != (signed > 0) else 0
        if closing:
            realized += closing * (price - float(self._avg[sid])) * (1 if old > 0 else -1)
        if new == 0:
            self._avg[sid] = 0.0
        elif old == 0 or (old > 0) != (new > 0):
            self._avg[sid] = price  # opened, or flipped: the remainder is at this price
        elif abs(new) > abs(old):
            self._avg[sid] = (self._avg[sid] * abs(old) + price * abs(signed)) / abs(new)
        self.realized += realized
        self._qty[sid] = new
        self._qty_f[sid] = float(new)
        self._sync_prices()
        self._last[sid] = self._last[sid] or price
        self._held = int(np.count_nonzero(self._qty))
        self._book_trade(fill, old, new, closing)
        if self._held:
            self.equity = self.cash + float(self._qty_f @ self._last)
        else:
            self.equity = self.cash
        return realized

    def _book_trade(self, fill: Fill, old: int, new: int, closing: int) -> None:
        trade = self.open_trades.get(fill.symbol)
        share = fill.costs * (closing / fill.qty) if fill.qty else 0.0
        if trade is not None and closing:
            trade.costs += share
            trade.pnl += closing * (fill.price - trade.entry_price) * trade.side - share
            if new == 0 or (old > 0) != (new > 0):
                trade.exit_ts_ns = fill.ts_ns
                trade.exit_price = fill.price
                trade.exit_reason = fill.reason
                self.trades.append(trade)
                del self.open_trades[fill.symbol]
        opened = abs(new) if (old == 0 or (old > 0) != (new > 0)) and new else 0
        added = abs(new) - abs(old) if old and (old > 0) == (new > 0) and abs(new) > abs(old) else 0
        entry_costs = fill.costs - share
        if opened:
            self.open_trades[fill.symbol] = Trade(
                fill.symbol,
                1 if new > 0 else -1,
                opened,
                fill.ts_ns,
                fill.price,
                costs=entry_costs,
                pnl=-entry_costs,
            )
        elif added and trade is not None:
            trade.entry_price = (trade.entry_price * trade.qty + fill.price * added) / (
                trade.qty + added
            )
            trade.qty += added
            trade.costs += entry_costs
            trade.pnl -= entry_costs
