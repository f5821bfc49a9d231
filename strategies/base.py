"""The strategy API: one interface across backtest, paper and live.

A strategy sees bar slices (and feature slices when it asks for them), its own fills, and a
``StrategyContext`` through which it reads its positions and emits order intents. It never sees
a future bar, the broker, or the risk chain: intents it emits are published after its handler
returns and are judged by risk before anything reaches a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from engine.events import BarSlice, FeatureSlice, Fill
from engine.ports import StrategyContext

__all__ = ["Strategy", "StrategyContext", "StrategyParams"]


@dataclass(frozen=True)
class StrategyParams:
    """Base for a strategy's typed parameters; ``from_strings`` serves ``--param k=v``."""

    @classmethod
    def from_strings(cls, raw: dict[str, str]) -> StrategyParams:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, text in raw.items():
            if key not in known:
                raise ValueError(
                    f"unknown parameter {key!r} for this strategy; known: {', '.join(known)}"
                )
            kind = known[key].type
            kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
            try:
                if kind_name == "int":
                    values[key] = int(text)
                elif kind_name == "float":
                    values[key] = float(text)
                elif kind_name == "bool":
                    values[key] = text.strip().lower() in {"1", "true", "yes", "on"}
                else:
                    values[key] = text
            except ValueError:
                raise ValueError(f"parameter {key}={text!r} is not a valid {kind_name}") from None
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        """Raise ValueError naming the parameter when a value is out of range."""


class Strategy:
    """Base class. Override the handlers you need; each runs inside one bus step."""

    name: ClassVar[str] = "strategy"
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    wants_features: ClassVar[bool] = False

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once before the first event."""

    def on_bars(self, bars: BarSlice, ctx: StrategyContext) -> None:
        """A bar slice closed; decide on it."""

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None:
        """The feature slice for the bar slice just handled (only if ``wants_features``)."""

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        """One of this strategy's orders filled (possibly partly)."""

    def config(self) -> dict[str, Any]:
        """What identifies this strategy's behaviour (stored with runs, keyed by promotions)."""
        return {"strategy": self.name, "params": self.params.__dict__}
