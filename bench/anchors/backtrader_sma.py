"""Anchor: SMA crossover through backtrader's normal Cerebro backtest, for throughput comparison.

  .venv-bench/bin/python bench/anchors/backtrader_sma.py --data PATH [--fast 10 --slow 30]
      [--repeat 3]

Prints one JSON line (see ``_bars.Measurement``). Rule: long-only, 1 unit, enter when the fast
SMA crosses above the slow SMA while flat, exit when it crosses below; market orders, which
backtrader fills at the next bar's open by default (``cheat_on_open`` and ``coc`` left off);
no commission, no slippage. Cerebro defaults are kept (``preload``/``runonce`` on, so indicators
are computed in backtrader's batch "once" pass before the event loop; ``stdstats`` on, so the
Broker/BuySell/Trades observers run every bar) because that is what a user gets out of the box.
"""

from __future__ import annotations

import sys
import time

import backtrader as bt
import pandas as pd
from _bars import (
    BarFileError,
    Measurement,
    RunOutcome,
    load_session_bars,
    measure,
    parse_args,
    report_failure,
)

STARTING_CASH = 10_000_000


class SmaCross(bt.Strategy):
    """Long-only SMA crossover; counts closed round trips and their realised PnL."""

    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.round_trips = 0
        self.realised_pnl = 0.0

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                self.buy(size=1)
        elif self.cross[0] < 0:
            self.close()

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.round_trips += 1
            self.realised_pnl += trade.pnl


def to_feed_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Index by naive IST time: backtrader's PandasData reads a naive datetime index."""
    frame = bars[["open", "high", "low", "close", "volume"]].astype(float)
    frame.index = pd.DatetimeIndex(bars["ts"].dt.tz_localize(None), name="datetime")
    return frame


def build_cerebro(frame: pd.DataFrame, fast: int, slow: int) -> bt.Cerebro:
    """A fresh Cerebro with the feed and strategy attached; nothing has run yet."""
    cerebro = bt.Cerebro()  # defaults: preload, runonce, stdstats all True
    cerebro.broker.setcash(STARTING_CASH)
    cerebro.broker.setcommission(commission=0.0)
    feed = bt.feeds.PandasData(
        dataname=frame,
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        openinterest=None,
    )
    cerebro.adddata(feed)
    cerebro.addstrategy(SmaCross, fast=fast, slow=slow)
    return cerebro


def run_cerebro(cerebro: bt.Cerebro) -> RunOutcome:
    strategy = cerebro.run()[0]
    return RunOutcome(
        trades=strategy.round_trips,
        total_pnl=strategy.realised_pnl,
        open_position=float(strategy.position.size),
    )


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    try:
        bars = load_session_bars(args.data)
    except BarFileError as error:
        return report_failure(error)
    frame = to_feed_frame(bars)
    loaded = time.perf_counter() - started
    measurement = Measurement(
        framework="backtrader",
        version=bt.__version__,
        bars=len(frame),
        load_seconds=loaded,
        notes=(
            "Cerebro defaults (preload, runonce, stdstats=True observers); market orders fill "
            "at next bar open; volume 0 kept (backtrader does not need volume); trades = closed "
            "round trips, total_pnl = their realised PnL (open position at end excluded); "
            "run time includes backtrader's feed preload, done inside cerebro.run()"
        ),
    )
    measure(
        args.repeat,
        lambda: build_cerebro(frame, args.fast, args.slow),
        run_cerebro,
        measurement,
    )
    print(measurement.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
