"""Strategy names → classes, for the CLI and for runs read back from the store."""

from __future__ import annotations

import importlib

from strategies.base import Strategy

#: name → "module:Class", imported on demand so `sma_cross` runs never import torch.
STRATEGIES: dict[str, str] = {
    "sma_cross": "strategies.sma_cross:SmaCross",
    "model": "strategies.model_strategy:ModelStrategy",
}


def strategy_class(name: str) -> type[Strategy]:
    target = STRATEGIES.get(name)
    if target is None:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    module, attr = target.split(":")
    cls: type[Strategy] = getattr(importlib.import_module(module), attr)
    return cls


def make_strategy(name: str, raw_params: dict[str, str] | None = None) -> Strategy:
    cls = strategy_class(name)
    return cls(cls.Params.from_strings(raw_params or {}))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """['fast=10', 'slow=30'] → {'fast': '10', 'slow': '30'}; names the malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r} must look like name=value")
        out[key.strip()] = value.strip()
    return out
