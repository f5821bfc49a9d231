"""The simulated broker shared by backtest and paper.

Execution rules (DESIGN "Time"): an order decided on bar T is never filled on bar T. On the next
bar of its symbol:
- MARKET fills at that bar's open, moved against the order by ``slippage_bps``;
- LIMIT fills if the bar trades through the limit: at the open if it gapped past it, else at the
  limit (no slippage: the price was offered);
- SL-M (stop) triggers if the bar reaches the stop: at the open if it gapped past it, else at
  the stop, then slippage;
- SL (stop-limit) triggers like a stop and then fills only if the limit is also reachable.
Prices are rounded to the tick against the order (buys up, sells down). Orders fill in full
(index bars carry no volume to size partial fills by). Costs come from the cost model.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from brokers.costs import CostModel
from engine.bus import EventBus
from engine.events import (
    BarSlice,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    closing_side,
)
from engine.ports import Broker

_EPS = 1e-9


def round_to_tick(price: float, tick: float, side: Side) -> float:
    """Round against the trader: a buy never pays less, a sell never gets more than computed."""
    units = price / tick
    units = math.ceil(units - _EPS) if side == Side.BUY else math.floor(units + _EPS)
    return round(units * tick, 10)


class SimulatedBroker(Broker):
    def __init__(
        self,
        bus: EventBus,
        costs: CostModel,
        slippage_bps: float = 0.0,
        tick_size: float = 0.05,
    ) -> None:
        self._bus = bus
        self._costs = costs
        self._slip = slippage_bps / 10_000.0
        self._tick = tick_size
        self._open: dict[str, Order] = {}
        self._seen: set[str] = set()
        #: the price the last matched order was decided against (NaN: a limit, none)
        self._reference = math.nan

    async def submit(self, order: Order) -> None:
        if order.order_id in self._seen:
            return  # idempotent: a retried submit never places twice
        self._seen.add(order.order_id)
        if order.qty <= 0:
            await self._finish(order, OrderStatus.REJECTED, order.ts_ns, 0, "qty must be > 0")
            return
        self._open[order.order_id] = order

    async def cancel(self, order_id: str, reason: str = "") -> None:
        order = self._open.get(order_id)
        if order is not None:
            await self._finish(order, OrderStatus.CANCELLED, order.ts_ns, 0, reason)

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    async def cancel_all(self, ts_ns: int, reason: str) -> None:
        for order in list(self._open.values()):
            await self._finish(order, OrderStatus.CANCELLED, ts_ns, 0, reason)

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        """Sync fast path when nothing is open (most bars); async only when orders may fill."""
        return self._match(bars) if self._open else None

    async def _match(self, bars: BarSlice) -> None:
        column = {symbol: j for j, symbol in enumerate(bars.symbols)}
        for order in list(self._open.values()):
            if order.ts_ns >= bars.ts_ns:
                continue  # decided on this bar (or later): not yet
            j = column.get(order.symbol)
            if j is None:
                continue  # no bar for this symbol now: wait for its next one
            price = self._execution_price(
                order, float(bars.open[j]), float(bars.high[j]), float(bars.low[j])
            )
            if price is None:
                continue
            await self._fill(order, bars.ts_ns, price)

    def _execution_price(self, order: Order, o: float, h: float, lo: float) -> float | None:
        buy = order.side == Side.BUY
        kind = order.order_type
        self._reference = o
        if kind == OrderType.MARKET:
            raw = o * (1 + self._slip) if buy else o * (1 - self._slip)
            return round_to_tick(raw, self._tick, order.side)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop = order.stop_price
            if not (h >= stop if buy else lo <= stop):
                return None
            base = max(o, stop) if buy else min(o, stop)
            if kind == OrderType.STOP:
                self._reference = base
                raw = base * (1 + self._slip) if buy else base * (1 - self._slip)
                return round_to_tick(raw, self._tick, order.side)
            o = base  # stop-limit: triggered; now behaves as a limit from the trigger price
        limit = order.limit_price
        self._reference = math.nan  # a limit fills at a price that was offered: no slippage
        if buy:
            return round_to_tick(min(o, limit), self._tick, order.side) if lo <= limit else None
        return round_to_tick(max(o, limit), self._tick, order.side) if h >= limit else None

    async def _fill(self, order: Order, ts_ns: int, price: float) -> None:
        costs = self._costs(order.side, order.qty, price)
        reference = self._reference
        slippage = 0.0 if math.isnan(reference) else abs(price - reference) * order.qty
        del self._open[order.order_id]
        bus = self._bus
        await bus.publish(
            OrderUpdate(
                ts_ns, bus.next_seq(), order.order_id, order.symbol, OrderStatus.FILLED, order.qty
            )
        )
        await bus.publish(
            Fill(ts_ns, bus.next_seq(), order.order_id, order.symbol, order.side, order.qty, price,
                 costs, order.reason, slippage=slippage)
        )  # fmt: skip

    async def end_of_data(
        self, ts_ns: int, holdings: dict[str, int], last_price: Callable[[str], float]
    ) -> bool:
        """Cancel what is open, then close each holding at its last close."""
        await self.cancel_all(ts_ns, "end of data")
        for symbol, qty in sorted(holdings.items()):
            await self.settle(ts_ns, symbol, qty, last_price(symbol), "end of data")
        return True

    async def settle(
        self, ts_ns: int, symbol: str, position: int, price: float, reason: str
    ) -> None:
        """Close a held ``position`` at ``price`` outside the order flow — the end of a replay,
        where there is no later bar to fill on (backtesting.py's ``finalize_trades``)."""
        side = closing_side(position)
        qty = abs(position)
        bus = self._bus
        await bus.publish(
            Fill(ts_ns, bus.next_seq(), "end-of-data", symbol, side, qty, price,
                 self._costs(side, qty, price), reason)
        )  # fmt: skip

    async def _finish(
        self, order: Order, status: OrderStatus, ts_ns: int, filled: int, reason: str
    ) -> None:
        self._open.pop(order.order_id, None)
        await self._bus.publish(
            OrderUpdate(
                ts_ns, self._bus.next_seq(), order.order_id, order.symbol, status, filled, reason
            )
        )
