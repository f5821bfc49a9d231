"""A daemon's session tells its ``Alerts`` port about itself: started, every fill, a summary at
each day's end (P&L and trades of that day, drawdown, state) and the stop — checked against
what the session itself stored."""

from __future__ import annotations

import re

from app.runners.paper import trading_session
from config.settings import load_settings
from engine.data.synthetic import SyntheticMarket
from engine.store.database import open_database
from strategies.sma_cross import SmaCross
from tests.support import PARAMS

SUMMARY = re.compile(r"summary: P&L ₹(-?[\d,]+\.\d\d), (\d+) trades, drawdown")


class Phone:
    """The ``Alerts`` port, keeping what it was told (the Telegram sender is tested apart)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def alert(self, text: str) -> None:
        self.texts.append(text)


async def test_a_session_sends_start_fills_daily_summaries_and_stop(tmp_path):
    settings = load_settings("paper", interval="15minute")
    bars = SyntheticMarket(symbols=2, days=3, seed=7).bars("15minute", settings.session.times)
    session = trading_session(
        bars, SmaCross(PARAMS), settings,
        open_database(str(tmp_path / "alerts.db")),
    )  # fmt: skip
    phone = Phone()
    session.attach_alerts(phone)
    result = await session.run()
    texts = phone.texts
    assert texts[0] == f"[paper] paper session started (run {result.run_id})"
    assert texts[-1] == f"[paper] paper session finished (run {result.run_id})"
    summaries = [t for t in texts if " summary: " in t]
    assert len(summaries) == 3  # one per day, the last one at the stop
    fills = [t for t in texts if " fill " in t]
    pf = session.pipe.portfolio
    assert len(fills) == sum(1 for _ in result.trades) * 2 - len(pf.holdings())
    parsed = [SUMMARY.search(t) for t in summaries]
    assert all(parsed)
    total_trades = sum(int(m.group(2)) for m in parsed if m)
    assert total_trades == len(pf.trades)  # each trade counted on exactly one day
    pnl = sum(float(m.group(1).replace(",", "")) for m in parsed if m)
    assert abs(pnl - (pf.equity - pf.initial_capital)) < 0.05  # the days add up to the run
