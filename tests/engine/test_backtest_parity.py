"""Agreement with an established backtester (backtesting.py) on real NSE bars.

Same rule, same bars (NIFTY 50 1-minute 2021, 09:15–15:29), same fills (next bar's open), no
costs, no slippage, no square-off. Trades must match bar for bar and price for price.

One documented difference: a position still open when the data ends is closed by us at the last
bar's *close* (the last price known). backtesting.py 0.6's ``finalize_trades`` re-runs its broker
"with the same OHLC values as in the last broker iteration", which fills that close at the last
bar's *open*. So the final trade's exit price — and the total P&L — differ by exactly
(last close − last open) × qty, which the test asserts rather than hides.
"""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pandas as pd
import pytest

from app.runners.backtest import run_backtest
from config.sessions import NSE
from config.settings import load_settings
from engine.data.loader import load_bars
from strategies.sma_cross import SmaCross, SmaCrossParams

backtesting = pytest.importorskip("backtesting")


def _reference_trades(frame: pd.DataFrame, fast: int, slow: int) -> pd.DataFrame:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(values: np.ndarray, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class Cross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, fast)
            self.slow = self.I(sma, self.data.Close, slow)

        def next(self) -> None:
            if crossover(self.fast, self.slow) and not self.position:
                self.buy(size=1)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    data = pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(),
            "High": frame["high"].to_numpy(),
            "Low": frame["low"].to_numpy(),
            "Close": frame["close"].to_numpy(),
            "Volume": frame["volume"].to_numpy(),
        },
        index=frame["ts"].dt.tz_localize(None),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, Cross, cash=10_000_000, commission=0, finalize_trades=True)
        stats = bt.run()
    return stats["_trades"]


@pytest.mark.parametrize("fast,slow", [(10, 30)])
def test_sma_cross_matches_backtesting_py(nifty_path, fast, slow):
    bars = load_bars([nifty_path], "1minute", session=NSE)
    settings = load_settings(
        interval="1minute",
        costs={"model": "none"},
        execution={"slippage_bps": 0.0},
        session={"square_off_enabled": False},
        capital=10_000_000,
    )
    strategy = SmaCross(SmaCrossParams(fast=fast, slow=slow, qty=1))
    ours = asyncio.run(run_backtest(bars, strategy, settings))
    ref = _reference_trades(bars.frame, fast, slow)

    assert len(ours.trades) == len(ref) > 100
    mine = pd.DataFrame(ours.trades)
    entry = pd.to_datetime(mine["entry_time"]).dt.tz_localize(None)
    exit_ = pd.to_datetime(mine["exit_time"]).dt.tz_localize(None)
    assert (entry.to_numpy() == ref["EntryTime"].to_numpy()).all()
    assert (exit_.to_numpy() == ref["ExitTime"].to_numpy()).all()
    np.testing.assert_allclose(mine["entry_price"], ref["EntryPrice"], rtol=0, atol=1e-9)
    last = bars.frame.iloc[-1]
    finalized = mine["exit_reason"].to_numpy() == "end of data"
    assert finalized.sum() <= 1 and (not finalized.any() or finalized[-1])
    closed = ~finalized
    np.testing.assert_allclose(
        mine["exit_price"][closed], ref["ExitPrice"][closed], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(mine["pnl"][closed], ref["PnL"][closed], rtol=0, atol=1e-6)
    end_gap = 0.0
    if finalized.any():
        assert mine["exit_price"].iloc[-1] == last["close"]
        assert ref["ExitPrice"].iloc[-1] == last["open"]
        end_gap = (last["close"] - last["open"]) * mine["qty"].iloc[-1]
    assert ours.metrics["total_pnl"] == pytest.approx(float(ref["PnL"].sum()) + end_gap, abs=1e-6)
    assert ours.denials == 0
