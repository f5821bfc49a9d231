"""Anchor: SMA crossover through NautilusTrader's BacktestEngine, for throughput comparison.

  .venv-bench/bin/python bench/anchors/nautilus_sma.py --data PATH [--fast 10 --slow 30]
      [--repeat 3]

Prints one JSON line (see ``_bars.Measurement``). Rule: long-only, 1 unit, enter when the fast
SMA crosses above the slow SMA while flat, exit the whole position when it crosses below; market
orders; no fees (instrument maker/taker fee 0), no slippage (default ``FillModel``).

Fill convention differs from the other anchors: with ``bar_execution=True`` (the default) the
simulated exchange replays each bar as open -> high -> low -> close *before* strategies see it,
and the order sent from ``on_bar`` is matched right after, against the book left at that bar's
close. ``bar_adaptive_high_low_ordering`` only reorders high/low and a latency model would delay
the fill to a later bar's close, so neither gives next-open fills; NautilusTrader offers no
next-bar-open option for bar data. Signals, hence trade count and work done, are the same; fill
prices (PnL) are not.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal

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
from nautilus_trader import __version__ as nautilus_version
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.currencies import INR
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import PositionClosed
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

VENUE = Venue("NSE")
STARTING_BALANCE = 10_000_000
ONE_MINUTE_NS = 60_000_000_000


class SmaCrossConfig(StrategyConfig, frozen=True):
    """Strategy parameters; Nautilus strategies take a frozen config object."""

    bar_type: str
    fast: int = 10
    slow: int = 30


class SmaCross(Strategy):
    """Long-only SMA crossover; counts closed positions (round trips) and their realised PnL."""

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.bar_type = BarType.from_str(config.bar_type)
        self.instrument_id = self.bar_type.instrument_id
        self.fast = SimpleMovingAverage(config.fast)
        self.slow = SimpleMovingAverage(config.slow)
        self.one_unit = Quantity.from_int(1)
        self.previous: tuple[float, float] | None = None
        self.round_trips = 0
        self.realised_pnl = 0.0

    def on_start(self) -> None:
        self.register_indicator_for_bars(self.bar_type, self.fast)
        self.register_indicator_for_bars(self.bar_type, self.slow)
        self.subscribe_bars(self.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not self.slow.initialized:
            return
        fast, slow = self.fast.value, self.slow.value
        previous, self.previous = self.previous, (fast, slow)
        if previous is None:
            return
        crossed_up = previous[0] < previous[1] and fast > slow
        crossed_down = previous[0] > previous[1] and fast < slow
        if crossed_up and self.portfolio.is_flat(self.instrument_id):
            buy = self.order_factory.market(self.instrument_id, OrderSide.BUY, self.one_unit)
            self.submit_order(buy)
        elif crossed_down and self.portfolio.is_net_long(self.instrument_id):
            self.close_all_positions(self.instrument_id)

    def on_position_closed(self, event: PositionClosed) -> None:
        self.round_trips += 1
        self.realised_pnl += event.realized_pnl.as_double()


def nse_equity(symbol: str) -> Equity:
    """An INR cash equity on "NSE" with zero fees, so PnL is price difference only."""
    return Equity(
        instrument_id=InstrumentId(Symbol(symbol), VENUE),
        raw_symbol=Symbol(symbol),
        currency=INR,
        price_precision=2,
        price_increment=Price.from_str("0.01"),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )


def to_nautilus_bars(bars: pd.DataFrame, instrument: Equity) -> tuple[BarType, list[Bar]]:
    """Wrangle to 1-minute LAST/EXTERNAL bars stamped at their close.

    Nautilus requires ``ts_init`` at the bar's close for bar execution (else a bar would be
    visible before it formed), and our ``ts`` is the bar's start, so the index is shifted by one
    minute. Volume 0 is kept: the matching engine sizes its synthetic ticks as
    ``max(volume / 4, size_increment)``, i.e. 1 unit, enough for the 1-unit orders.
    """
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    frame = bars[["open", "high", "low", "close", "volume"]].astype(float)
    frame.index = pd.DatetimeIndex(bars["ts"].dt.tz_convert("UTC")) + pd.Timedelta(minutes=1)
    return bar_type, BarDataWrangler(bar_type, instrument).process(frame)


def build_engine(
    instrument: Equity, bar_type: BarType, bars: list[Bar], fast: int, slow: int
) -> tuple[BacktestEngine, SmaCross]:
    """A fresh engine with venue, instrument, bars and strategy; nothing has run yet."""
    engine = BacktestEngine(
        config=BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR", bypass_logging=True))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=INR,
        starting_balances=[Money(STARTING_BALANCE, INR)],
        bar_execution=True,
        bar_adaptive_high_low_ordering=False,
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    strategy = SmaCross(SmaCrossConfig(bar_type=str(bar_type), fast=fast, slow=slow))
    engine.add_strategy(strategy)
    return engine, strategy


def run_engine(built: tuple[BacktestEngine, SmaCross]) -> RunOutcome:
    engine, strategy = built
    engine.run()
    position = engine.cache.positions_open()
    outcome = RunOutcome(
        trades=strategy.round_trips,
        total_pnl=strategy.realised_pnl,
        open_position=float(sum(p.signed_qty for p in position)),
    )
    return outcome


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    try:
        bars = load_session_bars(args.data)
    except BarFileError as error:
        return report_failure(error)
    instrument = nse_equity("NIFTY")
    bar_type, nautilus_bars = to_nautilus_bars(bars, instrument)
    loaded = time.perf_counter() - started
    measurement = Measurement(
        framework="NautilusTrader",
        version=nautilus_version,
        bars=len(nautilus_bars),
        load_seconds=loaded,
        notes=(
            "BacktestEngine, NETTING cash account INR 10M on venue NSE, zero-fee Equity, "
            "1-MINUTE-LAST-EXTERNAL bars stamped at close, bar_execution=True, adaptive "
            "high/low ordering off; market orders fill at the SIGNAL bar's close (Nautilus has "
            "no next-open fill for bars), so PnL differs from next-open engines; volume 0 kept; "
            "trades = PositionClosed events, total_pnl = their realised PnL; load includes "
            "BarDataWrangler; run includes kernel start/stop and post-run analysis (defaults)"
        ),
    )
    measure(
        args.repeat,
        lambda: build_engine(instrument, bar_type, nautilus_bars, args.fast, args.slow),
        run_engine,
        measurement,
        teardown=lambda built: built[0].dispose(),
    )
    print(measurement.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
