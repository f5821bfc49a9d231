"""Strategy names → classes, for the CLI and for runs read back from the store.

Three sources, later ones unable to shadow earlier ones (a plugin cannot replace ``model``):
1. the built-ins below, imported on demand so ``sma_cross`` runs never import torch;
2. installed packages that declare an entry point in the group ``nse_trader.strategies``
   (``[project.entry-points."nse_trader.strategies"] mine = "my_pkg.mine:Mine"``);
3. ``.py`` files in the directories listed in ``TRADER_STRATEGY_PATH`` (``os.pathsep``
   separated): every ``Strategy`` subclass defined in such a file is registered by its ``name``.
   This is the user's own code, run like any strategy module: only list directories you trust.

So a user's own strategy needs no edit of this file; README "Your own strategy" has a worked
example.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from strategies.base import Strategy

#: name → "module:Class", imported on demand so `sma_cross` runs never import torch.
BUILT_IN: dict[str, str] = {
    "sma_cross": "strategies.sma_cross:SmaCross",
    "model": "strategies.model_strategy:ModelStrategy",
}
ENTRY_POINT_GROUP = "nse_trader.strategies"
PATH_ENV = "TRADER_STRATEGY_PATH"


class StrategyLoadError(ValueError):
    """A plugin could not be loaded; the message names the file or entry point."""


def available() -> dict[str, str]:
    """Every known strategy name → where it comes from ("module:Class" or a file path)."""
    found = dict(BUILT_IN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    for path in _plugin_files():
        for name in _names_in_file(path):
            found.setdefault(name, str(path))
    return found


def strategy_class(name: str) -> type[Strategy]:
    target = available().get(name)
    if target is None:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(available()))}")
    if ":" in target and not Path(target).exists():
        module, attr = target.split(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise StrategyLoadError(
                f"strategy {name!r} ({target}) cannot be loaded: {exc}"
            ) from None
    else:
        cls = _classes_in_file(Path(target))[name]
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"strategy {name!r} ({target}) is not a Strategy subclass")
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


def _plugin_files() -> list[Path]:
    files: list[Path] = []
    for entry in filter(None, os.environ.get(PATH_ENV, "").split(os.pathsep)):
        folder = Path(entry)
        if not folder.is_dir():
            raise StrategyLoadError(f"{PATH_ENV}: {folder} is not a directory")
        files += sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    return files


def _names_in_file(path: Path) -> list[str]:
    return list(_classes_in_file(path))


_LOADED: dict[Path, dict[str, type[Strategy]]] = {}


def _classes_in_file(path: Path) -> dict[str, type[Strategy]]:
    """The ``Strategy`` subclasses a plugin file defines, by name (each file imported once)."""
    path = path.resolve()
    if path not in _LOADED:
        module_name = f"trader_strategy_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise StrategyLoadError(f"{path}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while defining
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise StrategyLoadError(f"{path}: cannot load strategy plugin: {exc!r}") from None
        _LOADED[path] = {
            cls.name: cls
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and issubclass(cls, Strategy)
            and cls is not Strategy
            and cls.__module__ == module_name
        }
    return _LOADED[path]
