"""``trader strategies``: every strategy the engine can run, with its parameters and defaults —
built-ins, installed plugins (entry points) and files in ``TRADER_STRATEGY_PATH``."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from typing import Any

from strategies.registry import BUILT_IN, available, strategy_class


def register(sub: Any) -> None:
    p = sub.add_parser("strategies", help="list strategies with their parameters and defaults")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_strategies)


def describe(name: str) -> dict[str, Any]:
    """What a user needs to run ``name``: where it comes from, what it does, its parameters."""
    cls = strategy_class(name)
    own = cls.__dict__.get("__doc__")  # not the base class's
    doc = inspect.cleandoc(own) if own else inspect.getdoc(sys.modules[cls.__module__]) or ""
    params = [
        {"name": f.name, "type": _type_name(f.type), "default": f.default}
        for f in dataclasses.fields(cls.Params)
    ]
    source = "built-in" if name in BUILT_IN else available()[name]
    summary = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
    return {"name": name, "source": source, "description": summary, "params": params}


def _type_name(kind: Any) -> str:
    return kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))


def cmd_strategies(args: argparse.Namespace) -> int:
    described = [describe(name) for name in sorted(available())]
    if args.json:
        print(json.dumps(described, indent=2, default=str))
        return 0
    for item in described:
        print(f"{item['name']}  ({item['source']})")
        if item["description"]:
            print(f"    {item['description']}")
        for param in item["params"]:
            print(f"    --param {param['name']}=…  {param['type']}, default {param['default']!r}")
        print()
    return 0
