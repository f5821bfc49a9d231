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
