"""Paper against backtest on the same days: which trades both took, which only one took, and
what the difference cost — the check the promotion plan asks for before going live.

Trades match when symbol and side agree and the entries lie within ``tolerance`` of each other
(greedy, in time order, each trade used once). Entry/exit slippage is paper minus backtest,
signed so that positive means paper did worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Comparison:
    matched: list[dict[str, Any]] = field(default_factory=list)
    only_paper: list[dict[str, Any]] = field(default_factory=list)
    only_backtest: list[dict[str, Any]] = field(default_factory=list)
    paper_pnl: float = 0.0
    backtest_pnl: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        slip = [m["entry_slippage"] + m["exit_slippage"] for m in self.matched]
        return {
            "matched": len(self.matched),
            "only_paper": len(self.only_paper),
            "only_backtest": len(self.only_backtest),
            "paper_pnl": self.paper_pnl,
            "backtest_pnl": self.backtest_pnl,
            "pnl_difference": self.paper_pnl - self.backtest_pnl,
            "matched_pnl_difference": sum(m["pnl_difference"] for m in self.matched),
            "avg_slippage_per_unit": sum(slip) / len(slip) if slip else 0.0,
            "trades": {
                "matched": self.matched,
                "only_paper": self.only_paper,
                "only_backtest": self.only_backtest,
            },
        }


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def compare_trades(
    paper: list[dict[str, Any]], backtest: list[dict[str, Any]], tolerance_s: float = 0.0
) -> Comparison:
    """Both lists as stored (``engine.store.queries.load_run``'s "trades")."""
    out = Comparison()
    if paper:
        first = min(_t(t["entry_time"]).date() for t in paper)
        last = max(_t(t["exit_time"]).date() for t in paper)
        backtest = [t for t in backtest if first <= _t(t["entry_time"]).date() <= last]
    out.paper_pnl = sum(t["pnl"] for t in paper)
    out.backtest_pnl = sum(t["pnl"] for t in backtest)
    unused = sorted(backtest, key=lambda t: t["entry_time"])
    for p in sorted(paper, key=lambda t: t["entry_time"]):
        entry = _t(p["entry_time"])
        best = None
        for i, b in enumerate(unused):
            if b["symbol"] != p["symbol"] or b["side"] != p["side"]:
                continue
            gap = abs((_t(b["entry_time"]) - entry).total_seconds())
            if gap <= tolerance_s and (best is None or gap < best[1]):
                best = (i, gap)
        if best is None:
            out.only_paper.append(p)
            continue
        b = unused.pop(best[0])
        sign = 1 if p["side"] == "LONG" else -1
        out.matched.append(
            {
                "symbol": p["symbol"],
                "side": p["side"],
                "entry_time": p["entry_time"],
                "paper_qty": p["qty"],
                "backtest_qty": b["qty"],
                "entry_slippage": sign * (p["entry_price"] - b["entry_price"]),
                "exit_slippage": sign * (b["exit_price"] - p["exit_price"]),
                "pnl_difference": p["pnl"] - b["pnl"],
            }
        )
    out.only_backtest = unused
    return out
