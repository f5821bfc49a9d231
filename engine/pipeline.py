"""The middle of the engine, wired once for every mode.

feed ─BarSlice→ broker (fills due orders at this bar's open) → portfolio (marks to close) →
risk monitor → square-off → [features → FeatureSlice] → strategy ─OrderIntent→ execution
(risk chain → Order → broker) ─Fill→ portfolio → strategy.

The subscription order above *is* the time semantics: orders decided on bar T reach the broker
after it has processed bar T, so they can only fill on a later bar. Backtest and paper differ
only in the feed and clock handed to ``Pipeline``; live differs in the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brokers.base import Broker
from brokers.costs import make_cost_model
from brokers.simulated import SimulatedBroker
from config.settings import EngineSettings
from engine.bus import EventBus
from engine.events import (
    BarSlice,
    BrokerEvent,
    FeatureSlice,
    Fill,
    Order,
    OrderIntent,
    OrderUpdate,
)
from engine.execution import ExecutionStage, PendingBook
from engine.portfolio import Portfolio
from engine.sessions import NS_PER_MINUTE, minute_of_day, parse_interval
from engine.square_off import SquareOff
from engine.strategy_host import StrategyHost
from engine.universe import Universe
from risk.chain import RiskChain
from risk.gates import (
    GrossExposureGate,
    MaxPositionGate,
    OrderRateGate,
    TradingStateGate,
    TradingWindowGate,
)
from risk.monitor import BrokerTroubleGuard, RiskMonitor
from risk.state import TradingStateMachine
from strategies.base import Strategy


@dataclass
class Pipeline:
    bus: EventBus
    settings: EngineSettings
    universe: Universe
    portfolio: Portfolio
    broker: Broker
    pending: PendingBook
    state: TradingStateMachine
    monitor: RiskMonitor
    chain: RiskChain
    execution: ExecutionStage
    host: StrategyHost
    #: BarSlice handlers that only compute decisions (features, strategy): what a restart
    #: replays over history to rebuild indicator state, with the host discarding intents
    decision_handlers: list[Any]

    async def warm(self, bars: BarSlice) -> None:
        self.host.warming = True
        try:
            for handler in self.decision_handlers:
                pending = handler(bars)
                if pending is not None:
                    await pending
        finally:
            self.host.warming = False


def run_config(settings: EngineSettings, strategy: Strategy) -> dict[str, object]:
    """What a run is keyed by: stored with it, compared on resume and by promotions."""
    return {"settings": settings.model_dump(mode="json"), **strategy.config()}


def simulated_broker(bus: EventBus, settings: EngineSettings) -> SimulatedBroker:
    return SimulatedBroker(
        bus,
        make_cost_model(settings.costs),
        settings.execution.slippage_bps,
        settings.execution.tick_size,
    )


def build_pipeline(
    settings: EngineSettings,
    strategy: Strategy,
    *,
    bus: EventBus | None = None,
    universe: Universe | None = None,
    broker: Broker | None = None,
    feature_stage_factory: object | None = None,
) -> Pipeline:
    """Wire the shared middle. ``broker`` defaults to the simulated one (backtest and paper)."""
    bus = bus or EventBus()
    universe = universe or Universe()
    interval_ns = parse_interval(settings.interval) * NS_PER_MINUTE
    portfolio = Portfolio(bus, universe, settings.capital)
    broker = broker or simulated_broker(bus, settings)
    pending = PendingBook()
    state = TradingStateMachine(bus.publish, bus.next_seq)
    monitor = RiskMonitor(bus, settings.risk, portfolio, state, broker)
    # Without intraday square-off, positions may be held overnight, and an order decided on the
    # session's last bar fills at the next session's open: no trading window then.
    window = (
        [TradingWindowGate(settings.session, interval_ns)]
        if settings.session.square_off_enabled
        else []
    )
    gates = [
        TradingStateGate(state),
        *window,
        MaxPositionGate(settings.risk, portfolio, pending),
        GrossExposureGate(settings.risk, portfolio),
        OrderRateGate(settings.risk),
    ]
    chain = RiskChain(gates, portfolio, pending)  # type: ignore[arg-type]
    execution = ExecutionStage(bus, chain, broker, pending, state)
    host = StrategyHost(bus, strategy, portfolio, pending)
    pipe = Pipeline(
        bus,
        settings,
        universe,
        portfolio,
        broker,
        pending,
        state,
        monitor,
        chain,
        execution,
        host,
        [],
    )

    bus.subscribe(BarSlice, broker.on_bars)
    bus.subscribe(BarSlice, portfolio.on_bars)
    bus.subscribe(BarSlice, monitor.on_bars)
    if settings.session.square_off_enabled:
        square_off = SquareOff(bus, portfolio, pending, minute_of_day(settings.session.square_off))
        bus.subscribe(BarSlice, square_off.on_bars)
    first_decision = len(bus.subscribers(BarSlice))
    if strategy.wants_features:
        if feature_stage_factory is None:
            from engine.features.calculator import FeatureCalculator
            from engine.features.stage import FeatureStage  # numba kernels: load only if used

            FeatureStage(bus, FeatureCalculator())
        else:
            feature_stage_factory(bus)  # type: ignore[operator]
        bus.subscribe(FeatureSlice, host.on_features)
    bus.subscribe(BarSlice, host.on_bars)
    pipe.decision_handlers = bus.subscribers(BarSlice)[first_decision:]
    bus.subscribe(OrderIntent, execution.on_intent)
    bus.subscribe(Order, host.on_order)
    bus.subscribe(OrderUpdate, pending.on_update)
    bus.subscribe(Fill, pending.on_fill)
    bus.subscribe(Fill, portfolio.on_fill)
    bus.subscribe(Fill, host.on_fill)
    bus.subscribe(BrokerEvent, BrokerTroubleGuard(monitor).on_broker_event)
    return pipe
