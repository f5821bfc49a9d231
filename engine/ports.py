"""What the core needs from the layers above it, declared here and received at construction.

The core (bus, portfolio, execution, strategy host, session loop) never imports ``brokers``,
``risk``, ``strategies`` or ``models``: it talks to these interfaces, and ``app/`` — the one
place that wires concrete classes — hands it the implementations:

| port | implemented by |
| --- | --- |
| ``Broker`` | ``brokers.simulated.SimulatedBroker``, ``brokers.kite.broker.KiteBroker`` |
| ``RiskCheck`` | ``risk.chain.RiskChain`` |
| ``TradingStateMachinePort`` | ``risk.state.TradingStateMachine`` |
| ``RiskControls`` | ``risk.monitor.RiskMonitor`` |
| ``Strategy`` (+ the ``StrategyContext`` it is given) | ``strategies.*`` |
| ``PredictorPort`` | ``models.inference.OnlinePredictor`` (paper, live; bar by bar) and |
| | ``models.predictions.PrecomputedPredictor`` (replays; computed ahead) |
| ``BarSource`` | ``engine.data.replay.ReplaySource``, ``brokers.kite.feed.KiteLiveSource`` |

``AccountView`` and ``PendingView`` go the other way: read-only views of core state (the
portfolio, the pending book) that risk gates and strategies are allowed to see.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from engine.events import (
    BarSlice,
    FeatureSlice,
    Fill,
    Order,
    OrderIntent,
    OrderType,
    Side,
    TradingState,
)
from engine.universe import Universe


# ---- broker ----------------------------------------------------------------------------------
class Broker(ABC):
    """Accepts risk-approved ``Order``s and reports back on the bus it was constructed with:
    ``OrderUpdate`` for lifecycle changes (rejected, cancelled, filled) and ``Fill`` for
    executions. It makes no risk decisions."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and reconcile open orders and positions with the account before trading."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections; open orders stay as they are at the broker."""

    @abstractmethod
    async def submit(self, order: Order) -> None:
        """Accept an approved order. Must be idempotent on ``order.order_id``."""

    def booked(self, order_id: str, qty: int, value: float, costs: float) -> None:  # noqa: B027
        """A restored order (just re-submitted) had ``qty`` filled for ``value`` and ``costs``
        booked before the restart: a broker that reports fills from the account's order book
        must not report them again, nor charge a per-order cap twice."""

    @abstractmethod
    async def cancel(self, order_id: str, reason: str = "") -> None:
        """Cancel an open order; unknown or finished orders are ignored."""

    @abstractmethod
    def open_orders(self) -> list[Order]:
        """Orders accepted and not yet finished, in submission order."""

    def on_bars(self, bars: BarSlice) -> Awaitable[None] | None:
        """Market data for brokers that simulate execution on it; real brokers ignore it.

        A bus handler: returns an awaitable only when it has async work this bar."""
        return None

    async def end_of_data(
        self, ts_ns: int, holdings: dict[str, int], last_price: Callable[[str], float]
    ) -> bool:
        """A finite replay ran out of bars. A simulated broker cancels what is open and closes
        what is held at its last close (like backtesting.py's ``finalize_trades``), so equity
        and the trade list agree; a real broker keeps its positions. True if it settled."""
        return False


# ---- market data -----------------------------------------------------------------------------
class BarSource(Protocol):
    """Where a session's bars come from: a replay (paced like live, or as fast as possible) or
    live ticks. Slices come in batches: a fast replay hands over thousands at a time (the
    session's loop is then as tight as a plain ``for``), a paced or live source one per bar.
    A batch may be lazy (each slice built when reached), so consume it in order, once."""

    fingerprint: str
    interval_minutes: int
    quality: dict[str, Any]
    finite: bool  # a replay ends; a live feed runs until stopped
    paced: bool  # bars arrive when they would be known live (wall-clock time matters)
    #: set by the session: awaited with (now, seconds silent) when a live feed goes quiet
    on_stale: Callable[[int, float], Awaitable[None]] | None
    #: set by the session: awaited with (now) when a feed that went quiet delivers again
    on_fresh: Callable[[int], Awaitable[None]] | None

    def batches(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[Iterable[BarSlice]]: ...


class Alerts(Protocol):
    """Where an operator hears about the run (a phone): session start/stop, fills, risk-state
    changes, broker trouble, stale feed, the daily summary. ``alert`` must return at once and
    never raise — a slow or failing notifier cannot be allowed to slow or stop trading."""

    def alert(self, text: str) -> None: ...


# ---- views of core state that the layers above may read ------------------------------------
class AccountView(Protocol):
    equity: float

    def qty(self, symbol: str) -> int: ...

    def last_price(self, symbol: str) -> float: ...

    def gross_exposure(self) -> float: ...


class PendingView(Protocol):
    def pending(self, symbol: str) -> int: ...


# ---- risk ------------------------------------------------------------------------------------
class Decision(NamedTuple):
    """A risk check's verdict on one intent: the gate that denied it and why."""

    approved: bool
    gate: str
    reason: str


class RiskCheck(Protocol):
    """Judges every intent before it may become an order (fail closed)."""

    def check(self, intent: OrderIntent) -> Decision: ...


class TradingStateMachinePort(Protocol):
    """ACTIVE → REDUCING → HALTED; tightens on its own, loosens only by ``resume``."""

    state: TradingState
    reason: str
    gate: str  # what moved it last

    async def tighten(self, to: TradingState, ts_ns: int, gate: str, reason: str) -> bool: ...

    async def resume(self, ts_ns: int, who: str, reason: str = "operator resume") -> None: ...


class RiskControls(Protocol):
    """The operator's and the restorer's handle on the per-bar risk monitor."""

    peak: float

    async def kill_switch(self, ts_ns: int, who: str = "operator") -> None: ...

    async def flatten(self, ts_ns: int, reason: str, only: str | None = None) -> None: ...

    async def feed_stale(self, ts_ns: int, silent_s: float) -> None: ...

    async def feed_fresh(self, ts_ns: int) -> bool: ...

    def restore_day(
        self, day: int, next_day_ns: int, day_start: float, last_equity: float
    ) -> None: ...


# ---- model predictions -----------------------------------------------------------------------
#: the probability columns every predictor returns, in this order (part of the checkpoint
#: contract: a model file's last layer is SELL, HOLD, BUY)
SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES: tuple[str, ...] = ("SELL", "HOLD", "BUY")


class PredictorPort(Protocol):
    """Class probabilities for the symbols of a feature slice whose window is complete.

    Chosen by the app layer: a replay gets predictions computed ahead in large batches (and
    cached), paper and live get ring buffers and one forward pass per bar. Both give the same
    numbers for the same window; a strategy cannot tell them apart."""

    spec_hash: str  # the feature spec the model was trained on

    def identity(self) -> dict[str, Any]:
        """What identifies the model(s) behind the numbers (stored with runs, keys promotions)."""
        ...

    def start(self) -> None:
        """Before the first bar: load and warm up (fail here, not mid-run)."""
        ...

    def probabilities(
        self, features: FeatureSlice, session_open: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the slice that have a prediction, float64 probabilities [n, 3])."""
        ...


# ---- strategy --------------------------------------------------------------------------------
class StrategyContext(Protocol):
    """What a running strategy may read and do (the core's strategy host implements it)."""

    @property
    def ts_ns(self) -> int:
        """Timestamp of the event being handled (UTC epoch ns)."""
        ...

    def position(self, symbol: str) -> int:
        """Filled position (signed) in ``symbol``."""
        ...

    def pending(self, symbol: str) -> int:
        """Signed quantity of this strategy's approved orders not yet filled or cancelled."""
        ...

    def positions_by_sid(self) -> np.ndarray:
        """Filled positions indexed by universe sid (int64, read-only view)."""
        ...

    def equity(self) -> float:
        """The account's equity (cash + positions at their last prices), for sizing."""
        ...

    def submit(
        self,
        symbol: str,
        side: Side,
        qty: int,
        order_type: OrderType = OrderType.MARKET,
        limit_price: float = math.nan,
        stop_price: float = math.nan,
        reason: str = "",
    ) -> None:
        """Emit an order intent (published once the current handler returns)."""
        ...

    def target(self, symbol: str, qty: int, reason: str = "") -> None:
        """Emit the market intent that takes position + pending to ``qty`` (nothing if there)."""
        ...


class Strategy(Protocol):
    """What the core calls on a strategy; ``strategies.base.Strategy`` is the base class."""

    name: ClassVar[str]
    wants_features: ClassVar[bool]

    def on_start(self, ctx: StrategyContext) -> None: ...

    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None: ...

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None: ...

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None: ...

    def config(self) -> dict[str, Any]: ...
