"""An engine ``Order`` → the parameters of Kite's "place regular order" call.

Checked here rather than at Kite so a malformed order is rejected with a message that names the
order and the field, before it costs a request from the rate budget. Prices are put on the
instrument's tick, because Kite refuses off-tick prices and strategies compute prices as floats:
a limit moves to the tick on the safe side (a buy never bids more, a sell never asks less than
the approved price); a trigger moves to the nearest tick.

Market protection: since 1 April 2026 Kite rejects API MARKET and SL-M orders that do not carry
``market_protection`` ("Market orders without market protection are not allowed via API"). It
is a percentage band around the last price (0 < p ≤ 100) or -1 for Kite's automatic band; Kite
turns such an order into a LIMIT order at the band's edge, so it cannot fill at any price — and
may fill only partly (``KiteBroker`` handles the resting remainder). LIMIT and SL orders carry
their own price and do not send it.
"""

from __future__ import annotations

import math
from typing import Any

from engine.events import Order, OrderType, Side

VARIETY_REGULAR = "regular"
PRODUCTS = ("MIS", "CNC")
#: ``market_protection`` value asking Kite for its automatic band (tiered by price)
MARKET_PROTECTION_AUTO = -1.0
#: order types Kite sends to the market, which must carry market protection
PROTECTED_TYPES = (OrderType.MARKET, OrderType.STOP)
_EPS = 1e-9


class OrderParamsError(ValueError):
    """The order cannot be expressed as a Kite order; the message names the order and field."""


def check_market_protection(value: float, name: str = "market_protection") -> float:
    """``value`` if Kite accepts it as market protection: -1 (automatic) or a percentage
    0 < p ≤ 100. Anything else raises ``ValueError`` naming the setting ``name`` — 0 above all,
    which Kite treats as "no protection" and rejects for MARKET and SL-M orders."""
    number = float(value)
    if number == MARKET_PROTECTION_AUTO or (math.isfinite(number) and 0 < number <= 100):
        return number
    raise ValueError(
        f"{name} must be -1 (Kite's automatic protection) or a percentage 0 < p <= 100, got "
        f"{value!r}: Kite rejects MARKET and SL-M orders without market protection"
    )


def _on_tick(price: float, tick: float, rounding: str) -> float:
    units = price / tick
    if rounding == "down":
        n = math.floor(units + _EPS)
    elif rounding == "up":
        n = math.ceil(units - _EPS)
    else:
        n = round(units)
    return round(n * tick, 10)


def _price(order: Order, field: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise OrderParamsError(
            f"order {order.order_id}: {order.order_type} order needs a positive {field}, "
            f"got {value}"
        )
    return value


def kite_order_params(
    order: Order,
    *,
    exchange: str,
    product: str,
    tag: str,
    tick_size: float = 0.05,
    market_protection: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``KiteConnect.place_order`` (variety "regular", validity DAY).

    MARKET and SL-M orders need ``market_protection`` (refused here without it, as Kite
    would); LIMIT and SL orders never carry it."""
    if product not in PRODUCTS:
        raise OrderParamsError(f"product {product!r} is not one of {', '.join(PRODUCTS)}")
    if order.qty <= 0:
        raise OrderParamsError(f"order {order.order_id}: quantity must be > 0, got {order.qty}")
    if tick_size <= 0:
        raise OrderParamsError(f"order {order.order_id}: tick size must be > 0, got {tick_size}")
    kind = OrderType(order.order_type)
    buy = order.side == Side.BUY
    params: dict[str, Any] = {
        "variety": VARIETY_REGULAR,
        "exchange": exchange,
        "tradingsymbol": order.symbol,
        "transaction_type": "BUY" if buy else "SELL",
        "quantity": int(order.qty),
        "product": product,
        "order_type": kind.value,
        "validity": "DAY",
        "tag": tag,
    }
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        limit = _price(order, "limit_price", order.limit_price)
        params["price"] = _on_tick(limit, tick_size, "down" if buy else "up")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
        stop = _price(order, "stop_price", order.stop_price)
        params["trigger_price"] = _on_tick(stop, tick_size, "nearest")
    if kind in PROTECTED_TYPES:
        if market_protection is None:
            raise OrderParamsError(
                f"order {order.order_id}: a {kind} order needs market protection (Kite rejects "
                "API market orders without it)"
            )
        try:
            params["market_protection"] = check_market_protection(market_protection)
        except ValueError as exc:
            raise OrderParamsError(f"order {order.order_id}: {exc}") from None
    return params
