"""The risk chain: every intent passes every gate in order; the first denial wins.

Fail closed: a gate that raises denies the intent with the error as the reason.
"""

from __future__ import annotations

from engine.events import OrderIntent
from engine.ports import AccountView, Decision, PendingView
from risk.gates import Gate, is_reducing

APPROVED = Decision(True, "", "")


class RiskChain:
    def __init__(self, gates: list[Gate], account: AccountView, pending: PendingView) -> None:
        self.gates = gates
        self._account = account
        self._pending = pending

    def check(self, intent: OrderIntent) -> Decision:
        try:
            reducing = is_reducing(
                intent, self._account.qty(intent.symbol), self._pending.pending(intent.symbol)
            )
        except Exception as exc:
            return Decision(False, "chain", f"could not assess exposure: {exc!r}")
        for gate in self.gates:
            try:
                reason = gate.check(intent, reducing)
            except Exception as exc:
                return Decision(False, gate.name, f"gate error (fail closed): {exc!r}")
            if reason is not None:
                return Decision(False, gate.name, reason)
        return APPROVED
