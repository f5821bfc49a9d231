"""The trading state machine: ACTIVE → REDUCING → HALTED.

The state only tightens on its own (``risk.monitor``): drawdown past ``reduce_drawdown_pct`` →
REDUCING; drawdown past ``max_drawdown_pct``, the daily loss limit, broker trouble or the kill
switch → HALTED. Loosening needs an operator (``resume``) or a new trading session, which
lifts every state except the kill switch's (a limit still breached tightens again at once);
every transition is a stored ``RiskEvent`` with its reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.events import RiskEvent, TradingState

_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}

Publish = Callable[[RiskEvent], Awaitable[None]]


class TradingStateMachine:
    def __init__(self, publish: Publish, next_seq: Callable[[], int]) -> None:
        self.state = TradingState.ACTIVE
        self.reason = ""
        self.gate = ""  # what moved it last: lets a cause lift only its own halt
        self._publish = publish
        self._next_seq = next_seq

    async def tighten(self, to: TradingState, ts_ns: int, gate: str, reason: str) -> bool:
        """Move to a stricter state; a looser or equal target is ignored. True if it moved."""
        if _RANK[to] <= _RANK[self.state]:
            return False
        await self._move(to, ts_ns, gate, reason)
        return True

    async def resume(self, ts_ns: int, who: str, reason: str = "operator resume") -> None:
        """Operator action (or a new session): back to ACTIVE."""
        if self.state != TradingState.ACTIVE:
            await self._move(TradingState.ACTIVE, ts_ns, who, reason)

    async def _move(self, to: TradingState, ts_ns: int, gate: str, reason: str) -> None:
        self.state = to
        self.reason = reason
        self.gate = gate
        await self._publish(RiskEvent(ts_ns, self._next_seq(), "state", gate, "", reason, to))
