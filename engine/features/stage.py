"""The pipeline stage between bar slices and strategies.

It turns each ``BarSlice`` into a ``FeatureSlice`` for the same symbols, in the same order, and
publishes it inside the same bus step (depth-first), so a strategy sees bar T's features before
the bus moves to the next event and never sees features from a later bar.
"""

from __future__ import annotations

from engine.bus import EventBus
from engine.events import BarSlice, FeatureSlice
from engine.features.calculator import FeatureCalculator
from engine.features.spec import SPEC_HASH


class FeatureStage:
    """Subscribes itself to ``BarSlice`` on ``bus``; publishes one ``FeatureSlice`` per slice."""

    def __init__(self, bus: EventBus, calculator: FeatureCalculator) -> None:
        self.bus = bus
        self.calculator = calculator
        bus.subscribe(BarSlice, self.on_bars)

    def compute(self, bars: BarSlice) -> FeatureSlice:
        """Advance the calculator by ``bars`` and build the event (values are read-only)."""
        values, ready = self.calculator.update(
            bars.sid, bars.ts_ns, bars.open, bars.high, bars.low, bars.close, bars.volume,
            bars.session_open,
        )  # fmt: skip
        values.flags.writeable = False
        ready.flags.writeable = False
        return FeatureSlice(
            bars.ts_ns, self.bus.next_seq(), bars.sid, bars.symbols, values, ready, SPEC_HASH
        )

    async def on_bars(self, bars: BarSlice) -> None:
        await self.bus.publish(self.compute(bars))
