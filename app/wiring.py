"""The one place that picks concrete classes for the core's ports and wires a pipeline.

Backtest, paper and live get the same parts; only the broker (simulated unless one is given)
and a model strategy's predictor (computed ahead for replays, online otherwise) differ.
Everything here is construction — the behaviour lives in the parts.
"""

from __future__ import annotations

from pathlib import Path

from brokers.costs import make_cost_model
from brokers.simulated import SimulatedBroker
from config.paths import prediction_cache_dir
from config.sessions import NS_PER_MINUTE, minute_of_day, parse_interval
from config.settings import EngineSettings
from engine.bus import EventBus
from engine.data.loader import LoadedBars
from engine.execution import PendingBook
from engine.pipeline import Pipeline, RiskParts, assemble_pipeline
from engine.portfolio import Portfolio
from engine.ports import Broker, Strategy
from engine.universe import Universe
from models.feature_source import table_from_loaded_bars
from models.inference import OnlinePredictor, Predictor
from models.precision import require_precision
from models.predictions import PrecomputedPredictor
from risk.chain import RiskChain
from risk.gates import (
    GrossExposureGate,
    MaxPositionGate,
    OrderRateGate,
    TradingStateGate,
    TradingWindowGate,
)
from risk.monitor import BrokerTroubleGuard, RiskMonitor
from risk.square_off import SquareOff
from risk.state import TradingStateMachine
from strategies.model_strategy import ModelStrategy


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
    session = settings.session
    # Without intraday square-off, positions may be held overnight, and an order decided on the
    # session's last bar fills at the next session's open: no trading window then.
    window = [TradingWindowGate(session, interval_ns)] if session.square_off_enabled else []
    gates = [
        TradingStateGate(state),
        *window,
        MaxPositionGate(settings.risk, portfolio, pending),
        GrossExposureGate(settings.risk, portfolio),
        OrderRateGate(settings.risk),
    ]
    guards = [monitor.on_bars]
    if session.square_off_enabled:
        square_off = SquareOff(bus, portfolio, pending, minute_of_day(session.square_off))
        guards.append(square_off.on_bars)
    risk = RiskParts(
        state=state,
        check=RiskChain(gates, portfolio, pending),  # type: ignore[arg-type]
        controls=monitor,
        bar_guards=guards,
        on_broker_event=[BrokerTroubleGuard(monitor).on_broker_event],
    )
    return assemble_pipeline(settings, strategy, bus, universe, portfolio, pending, broker, risk)


# ---- the model strategy's predictor -----------------------------------------------------------
def check_strategy(strategy: Strategy) -> None:
    """What can be checked before any data is read: a model strategy's precision must run on
    this machine (bf16 on a CPU without a bf16 LSTM kernel is refused, naming the CPU)."""
    if isinstance(strategy, ModelStrategy) and strategy.p.device == "cpu":
        require_precision(strategy.p.precision, strategy.p.device)


def prediction_cache(cache_dir: str) -> Path | None:
    """The model strategy's ``cache_dir``: "" (the default) is ``$TRADER_HOME/cache/
    predictions``, so changing a threshold re-runs without predicting again; ``off`` keeps
    predictions in memory only. The cache is keyed by model hash and feature-data fingerprint,
    so a stale entry is never read."""
    if cache_dir.strip().lower() == "off":
        return None
    return Path(cache_dir) if cache_dir else prediction_cache_dir()


def attach_predictor(
    strategy: Strategy, replay: LoadedBars | None = None, progress: bool = False
) -> PrecomputedPredictor | None:
    """Give a model strategy the predictor for its mode. A replay (``replay`` given) gets every
    window predicted ahead in large batches (cached on disk with ``cache_dir``) and looked up
    bar by bar; paper and live get ring buffers and one forward pass per bar. Returns the
    precomputed predictor (it can score the model's calls afterwards), else None."""
    if not isinstance(strategy, ModelStrategy) or strategy.predictor is not None:
        return None
    params = strategy.p
    if not params.model_paths:
        raise ValueError("parameter model is required: path(s) to model checkpoint(s)")
    check_strategy(strategy)
    # the spec is checked against the features actually arriving (first slice / the table)
    network = Predictor.from_paths(
        params.model_paths, expected_spec_hash=None, device=params.device,
        num_threads=params.threads or None, precision=params.precision,
    )  # fmt: skip
    if replay is None:
        strategy.use_predictor(OnlinePredictor(network))
        return None
    table = table_from_loaded_bars(replay)
    ahead = PrecomputedPredictor(network, table, prediction_cache(params.cache_dir), progress)
    strategy.use_predictor(ahead)
    return ahead
