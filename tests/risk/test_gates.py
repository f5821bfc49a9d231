from __future__ import annotations

import math

import pytest

from config.settings import RiskSettings, SessionSettings
from engine.events import OrderIntent, Side, TradingState
from risk.chain import RiskChain
from risk.gates import (
    GrossExposureGate,
    MaxPositionGate,
    OrderRateGate,
    TradingStateGate,
    TradingWindowGate,
    is_reducing,
)

MIN = 60_000_000_000
IST_0915_UTC_NS = (3 * 60 + 45) * MIN  # 09:15 IST on 1970-01-01 is 03:45 UTC


class Account:
    def __init__(self, qty: int = 0, price: float = 100.0, equity: float = 10_000.0) -> None:
        self._qty, self._price, self.equity = qty, price, equity

    def qty(self, symbol: str) -> int:
        return self._qty

    def last_price(self, symbol: str) -> float:
        return self._price

    def gross_exposure(self) -> float:
        return abs(self._qty) * self._price


class Pending:
    def __init__(self, n: int = 0) -> None:
        self.n = n

    def pending(self, symbol: str) -> int:
        return self.n


class State:
    def __init__(self, state: TradingState, reason: str = "") -> None:
        self.state, self.reason = state, reason


def intent(side: Side, qty: int, minute: int = 60, source: str = "s") -> OrderIntent:
    return OrderIntent(IST_0915_UTC_NS + minute * MIN, 1, "i", source, "X", side, qty)


def test_is_reducing():
    assert is_reducing(intent(Side.SELL, 5), 10, 0)
    assert is_reducing(intent(Side.SELL, 10), 10, 0)
    assert not is_reducing(intent(Side.SELL, 11), 10, 0)  # crosses zero
    assert not is_reducing(intent(Side.BUY, 1), 10, 0)
    assert not is_reducing(intent(Side.SELL, 1), 0, 0)
    assert not is_reducing(intent(Side.SELL, 5), 10, -10)  # already being closed


def test_state_gate():
    reducing = intent(Side.SELL, 5)
    assert TradingStateGate(State(TradingState.ACTIVE)).check(intent(Side.BUY, 1), False) is None
    g = TradingStateGate(State(TradingState.REDUCING))
    assert g.check(reducing, True) is None and "REDUCING" in g.check(intent(Side.BUY, 1), False)
    g = TradingStateGate(State(TradingState.HALTED, "drawdown"))
    assert "HALTED" in g.check(reducing, True)  # strategies can't even reduce
    assert g.check(intent(Side.SELL, 5, source="risk"), True) is None


def test_trading_window_uses_the_fill_time():
    g = TradingWindowGate(SessionSettings(), 5 * MIN)
    assert g.check(intent(Side.BUY, 1, minute=0), False) is None
    # decided on the 15:15 bar → fills at 15:20 = square-off: no new exposure
    assert "trading window" in g.check(intent(Side.BUY, 1, minute=360), False)
    assert g.check(intent(Side.SELL, 1, minute=360), True) is None


def test_max_position_and_gross_exposure():
    acct = Account(qty=8)
    g = MaxPositionGate(RiskSettings(max_position_qty=10), acct, Pending(2))
    assert "max_position_qty 10" in g.check(intent(Side.BUY, 1), False)
    g = MaxPositionGate(RiskSettings(max_position_value=1_000.0), Account(), Pending())
    assert g.check(intent(Side.BUY, 10), False) is None
    assert "max_position_value" in g.check(intent(Side.BUY, 11), False)
    g = GrossExposureGate(RiskSettings(max_gross_exposure=1.0), Account(qty=50))
    assert g.check(intent(Side.BUY, 50), False) is None
    assert "gross exposure" in g.check(intent(Side.BUY, 51), False)


def test_order_rate_uses_event_time():
    g = OrderRateGate(RiskSettings(max_orders_per_minute=2))
    assert g.check(intent(Side.BUY, 1, minute=0), False) is None
    assert g.check(intent(Side.BUY, 1, minute=0), False) is None
    assert "per minute" in g.check(intent(Side.BUY, 1, minute=0), False)
    assert g.check(intent(Side.BUY, 1, minute=2), False) is None


def test_chain_fails_closed_on_a_gate_error():
    class Broken:
        name = "broken"

        def check(self, intent, reducing):
            raise RuntimeError("no data")

    chain = RiskChain([Broken()], Account(), Pending())
    decision = chain.check(intent(Side.BUY, 1))
    assert not decision.approved and decision.gate == "broken"
    assert "fail closed" in decision.reason and "no data" in decision.reason

    class NaNAccount(Account):
        def qty(self, symbol):
            raise ValueError("unknown")

    decision = RiskChain([], NaNAccount(), Pending()).check(intent(Side.BUY, 1))
    assert not decision.approved


@pytest.mark.parametrize("qty", [1, 3])
def test_chain_first_denial_wins(qty):
    chain = RiskChain(
        [
            TradingStateGate(State(TradingState.HALTED, "x")),
            MaxPositionGate(RiskSettings(max_position_qty=1), Account(), Pending()),
        ],
        Account(),
        Pending(),
    )
    d = chain.check(intent(Side.BUY, qty))
    assert d.gate == "trading_state" and not math.isnan(len(d.reason))


async def test_broker_trouble_halts_without_flattening():
    from app.wiring import build_pipeline
    from config.settings import load_settings
    from engine.events import BrokerEvent
    from strategies.sma_cross import SmaCross

    pipe = build_pipeline(load_settings(), SmaCross())
    bus = pipe.bus
    await bus.publish(BrokerEvent(1, bus.next_seq(), "reconciled", "ok"))
    assert pipe.state.state == TradingState.ACTIVE
    await bus.publish(BrokerEvent(2, bus.next_seq(), "token_expired", "token expired", True))
    assert pipe.state.state == TradingState.HALTED
    assert pipe.state.reason == "token expired"
