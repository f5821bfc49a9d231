from __future__ import annotations

import numpy as np
import pytest

from engine.bus import EventBus
from engine.events import BarSlice, Fill, PositionChange, Side
from engine.portfolio import Portfolio
from engine.universe import Universe

MIN = 60_000_000_000


def fill(t: int, side: Side, qty: int, price: float, costs: float = 0.0) -> Fill:
    return Fill(t * MIN, t, f"o{t}", "X", side, qty, price, costs, "")


def slice_at(t: int, close: float, sid: int = 0, symbol: str = "X") -> BarSlice:
    a = np.array([close])
    return BarSlice(
        t * MIN, t, MIN, np.array([sid]), (symbol,), a, a, a, a, a * 0, np.array([False])
    )


async def test_cash_positions_realized_unrealized_and_trades():
    async def on_fill(f):
        pending = pf.on_fill(f)
        if pending is not None:
            await pending

    bus = EventBus()
    changes: list[PositionChange] = []
    bus.subscribe(PositionChange, changes.append)
    pf = Portfolio(bus, Universe(["X"]), 10_000.0)
    await on_fill(fill(1, Side.BUY, 10, 100.0, costs=1.0))
    assert pf.cash == pytest.approx(10_000 - 1000 - 1)
    pf.on_bars(slice_at(1, 105.0))
    assert pf.equity == pytest.approx(10_000 - 1 + 50)  # unrealized +50
    await on_fill(fill(2, Side.BUY, 10, 110.0))
    assert pf.avg_price("X") == pytest.approx(105.0)
    await on_fill(fill(3, Side.SELL, 5, 120.0, costs=0.5))
    assert pf.qty("X") == 15
    assert changes[-1].realized_pnl == pytest.approx(5 * 15 - 0.5)
    await on_fill(fill(4, Side.SELL, 25, 100.0))  # flip: close 15, open short 10
    assert pf.qty("X") == -10 and pf.avg_price("X") == 100.0
    assert len(pf.trades) == 1
    t = pf.trades[0]
    assert t.side == 1 and t.qty == 20 and t.entry_price == pytest.approx(105.0)
    assert t.pnl == pytest.approx(5 * 15 - 0.5 + 15 * (100 - 105) - 1.0)
    assert pf.realized == pytest.approx(t.pnl)
    pf.on_bars(slice_at(5, 90.0))
    assert pf.equity == pytest.approx(pf.cash - 10 * 90.0)
    assert pf.equity == pytest.approx(10_000 + pf.realized + 10 * (100 - 90))
    assert pf.holdings() == {"X": -10}
    assert pf.curve_gross[-1] == pytest.approx(900.0)


def test_new_symbols_grow_state_without_losing_it():
    bus = EventBus()
    uni = Universe(["A"])
    pf = Portfolio(bus, uni, 1_000.0)
    pf.apply_fill(Fill(MIN, 1, "o", "A", Side.BUY, 1, 10.0, 0.0))
    for i in range(200):
        uni.add(f"S{i}")
    pf.on_bars(slice_at(2, 12.0, sid=uni.sid("S150"), symbol="S150"))
    assert pf.qty("A") == 1 and pf.last_price("S150") == 12.0
