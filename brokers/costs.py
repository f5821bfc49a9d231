"""Transaction cost models. Rates come from ``CostSettings`` so a run states what it charged."""

from __future__ import annotations

from typing import Protocol

from config.settings import CostSettings
from engine.events import Side


class CostModel(Protocol):
    def __call__(self, side: Side, qty: int, price: float) -> float:
        """Total charges in rupees for one executed order."""
        ...


class NoCosts:
    def __call__(self, side: Side, qty: int, price: float) -> float:
        return 0.0


class ZerodhaIntradayCosts:
    """Zerodha MIS equity: brokerage min(0.03%, ₹20) per executed order, STT on the sell leg,
    NSE transaction charges, SEBI turnover fee, stamp duty on the buy leg, GST on
    brokerage + transaction + SEBI. Not rounded to paise, so totals add up exactly."""

    def __init__(self, s: CostSettings) -> None:
        self._brokerage = s.brokerage_pct / 100.0
        self._cap = s.brokerage_cap
        self._stt = s.stt_sell_pct / 100.0
        self._txn = s.exchange_txn_pct / 100.0
        self._sebi = s.sebi_per_crore / 1e7
        self._stamp = s.stamp_buy_pct / 100.0
        self._gst = s.gst_pct / 100.0

    def __call__(self, side: Side, qty: int, price: float) -> float:
        turnover = abs(qty) * price
        brokerage = min(turnover * self._brokerage, self._cap)
        txn = turnover * self._txn
        sebi = turnover * self._sebi
        gst = (brokerage + txn + sebi) * self._gst
        tax = turnover * (self._stt if side == Side.SELL else self._stamp)
        return brokerage + txn + sebi + gst + tax


def make_cost_model(s: CostSettings) -> CostModel:
    return NoCosts() if s.model == "none" else ZerodhaIntradayCosts(s)


class OrderCosts:
    """The charges of orders that fill in pieces, each piece charged what it adds to its order.

    Zerodha's ₹20 brokerage cap is per executed order, not per trade: an order of ₹2,00,000
    filled in two halves pays min(0.03% of ₹2,00,000, ₹20) = ₹20 once, where pricing each half
    alone would charge ₹20 twice. Every other charge is proportional to turnover, so a piece is
    charged ``model(its order's turnover so far) − what the order was charged before`` — which
    relies on the model pricing turnover (``qty × price``), as both models here do."""

    def __init__(self, model: CostModel) -> None:
        self._model = model
        self._turnover: dict[str, float] = {}
        self._charged: dict[str, float] = {}

    def booked(self, order_id: str, turnover: float, charged: float) -> None:
        """What an order had filled and been charged before a restart."""
        self._turnover[order_id] = turnover
        self._charged[order_id] = charged

    def __call__(self, order_id: str, side: Side, qty: int, price: float) -> float:
        turnover = self._turnover.get(order_id, 0.0) + abs(qty) * price
        total = self._model(side, 1, turnover)
        charge = total - self._charged.get(order_id, 0.0)
        self._turnover[order_id] = turnover
        self._charged[order_id] = total
        return charge
