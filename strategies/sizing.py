"""How many shares a new position gets: one rule for every strategy that offers the choice.

- ``qty``: a fixed number of shares (``qty``);
- ``notional``: a fixed rupee amount per position (``notional`` / price, rounded down);
- ``fraction``: a fraction of the account's current equity per position (``fraction`` ×
  equity / price, rounded down), so positions grow and shrink with the account.

A size that rounds to 0 shares (price above the amount) means no entry; the risk chain still
checks every order against its limits.
"""

from __future__ import annotations

import math

SIZINGS = ("qty", "notional", "fraction")


def check_sizing(sizing: str, qty: int, notional: float, fraction: float) -> None:
    """Parameter errors named as the user typed them (``--param sizing=…``)."""
    if sizing not in SIZINGS:
        raise ValueError(f"parameter sizing={sizing!r} must be one of {', '.join(SIZINGS)}")
    if qty < 1:
        raise ValueError(f"parameter qty={qty} must be ≥ 1")
    if not notional > 0:
        raise ValueError(f"parameter notional={notional} must be > 0 (rupees per position)")
    if not 0 < fraction <= 1:
        raise ValueError(f"parameter fraction={fraction} must be in (0, 1] (of equity)")


def shares(sizing: str, qty: int, notional: float, fraction: float, price: float,
           equity: float) -> int:  # fmt: skip
    """Shares for a new position at ``price`` with the account at ``equity``."""
    if sizing == "qty":
        return qty
    if not price > 0 or not math.isfinite(price):
        return 0
    amount = notional if sizing == "notional" else fraction * max(equity, 0.0)
    return int(amount // price)
