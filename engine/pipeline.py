"""The middle of the engine, assembled in one order for every mode.

feed ─BarSlice→ broker (fills due orders at this bar's open) → portfolio (marks to close) →
bar guards (risk monitor, square-off) → [features → FeatureSlice] → strategy ─OrderIntent→
execution (risk check → Order → broker) ─Fill→ portfolio → strategy.

The subscription order above *is* the time semantics: orders decided on bar T reach the broker
after it has processed bar T, so they can only fill on a later bar. That order is the core's
to keep, so it is fixed here; *which* broker, gates and guards take part is chosen by the app
layer (``app/wiring.py``), which hands them in through the ports of ``engine.ports``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from engine.ports import Broker, RiskCheck, RiskControls, Strategy, TradingStateMachinePort
from engine.strategy_host import StrategyHost
from engine.universe import Universe

BarHandler = Callable[[BarSlice], Awaitable[None] | None]
BrokerEventHandler = Callable[[BrokerEvent], Awaitable[None] | None]


@dataclass
class RiskParts:
    """What the risk layer contributes to a pipeline (built by the app layer)."""

    state: TradingStateMachinePort
    check: RiskCheck
    controls: RiskControls
    #: per-bar account guards, after the portfolio is marked and before any decision
    bar_guards: Sequence[BarHandler] = ()
    on_broker_event: Sequence[BrokerEventHandler] = ()


@dataclass
class Pipeline:
    bus: EventBus
    settings: EngineSettings
    universe: Universe
    portfolio: Portfolio
    broker: Broker
    pending: PendingBook
    state: TradingStateMachinePort
    monitor: RiskControls
    execution: ExecutionStage
    host: StrategyHost
    #: BarSlice handlers that only compute decisions (features, strategy): what a restart
    #: replays over history to rebuild indicator state, with the host discarding intents
    decision_handlers: list[Any] = field(default_factory=list)

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


def assemble_pipeline(
    settings: EngineSettings,
    strategy: Strategy,
    bus: EventBus,
    universe: Universe,
    portfolio: Portfolio,
    pending: PendingBook,
    broker: Broker,
    risk: RiskParts,
) -> Pipeline:
    """Subscribe the parts in the order that makes the time semantics hold."""
    execution = ExecutionStage(bus, risk.check, broker, pending, risk.state)
    host = StrategyHost(bus, strategy, portfolio, pending)
    pipe = Pipeline(
        bus, settings, universe, portfolio, broker, pending, risk.state, risk.controls,
        execution, host,
    )  # fmt: skip
    bus.subscribe(BarSlice, broker.on_bars)
    bus.subscribe(BarSlice, portfolio.on_bars)
    for guard in risk.bar_guards:
        bus.subscribe(BarSlice, guard)
    first_decision = len(bus.subscribers(BarSlice))
    if strategy.wants_features:
        from engine.features.calculator import FeatureCalculator
        from engine.features.stage import FeatureStage  # numba kernels: load only if used

        FeatureStage(bus, FeatureCalculator(session=settings.session.times))
        bus.subscribe(FeatureSlice, host.on_features)
    bus.subscribe(BarSlice, host.on_bars)
    pipe.decision_handlers = bus.subscribers(BarSlice)[first_decision:]
    bus.subscribe(OrderIntent, execution.on_intent)
    bus.subscribe(Order, host.on_order)
    bus.subscribe(OrderUpdate, pending.on_update)
    bus.subscribe(Fill, pending.on_fill)
    bus.subscribe(Fill, portfolio.on_fill)
    bus.subscribe(Fill, host.on_fill)
    for handler in risk.on_broker_event:
        bus.subscribe(BrokerEvent, handler)
    return pipe
