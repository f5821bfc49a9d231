"""``trader features spec [--json]`` and ``trader features build``.

Registered by ``app.cli`` for every invocation, so this module imports nothing heavy: the
numba kernels load only when ``build`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.commands.data_options import add_data_options, data_settings


def register(subparsers: Any) -> None:
    """Add the ``features`` command and its sub-commands to the ``trader`` parser."""
    features = subparsers.add_parser(
        "features", help="the 89-feature spec and feature files for training"
    )
    sub = features.add_subparsers(dest="features_command", metavar="{spec,build}", required=True)

    spec = sub.add_parser("spec", help="print the feature spec (names, order, warm-up, TA-Lib)")
    spec.add_argument("--json", action="store_true", help="machine-readable JSON")
    spec.set_defaults(func=cmd_spec)

    build = sub.add_parser("build", help="compute features for stored bars into a Parquet file")
    build.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="bar file or directory (repeatable)",
    )
    build.add_argument("--interval", default="5minute", help="bar interval (default 5minute)")
    build.add_argument("--out", required=True, metavar="FEATURES.parquet")
    add_data_options(build)
    build.set_defaults(func=cmd_build)


def cmd_spec(args: argparse.Namespace) -> int:
    from engine.features.spec import FEATURES, MAX_WARMUP, SPEC_HASH, SPEC_VERSION, spec_as_json

    if args.json:
        json.dump(spec_as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"feature spec v{SPEC_VERSION}  hash {SPEC_HASH}")
    print(f"{len(FEATURES)} features; a symbol is ready after {MAX_WARMUP} bars\n")
    print(f"{'#':>3}  {'name':<18} {'group':<10} {'warm-up':>7}  TA-Lib")
    for i, f in enumerate(FEATURES):
        twin = ""
        if f.talib is not None:
            kwargs = ", ".join(f"{k}={v}" for k, v in f.talib.kwargs.items())
            twin = f"{f.talib.function}({', '.join(f.talib.inputs)}; {kwargs})[{f.talib.output}]"
        print(f"{i:>3}  {f.name:<18} {f.group:<10} {f.warmup:>7}  {twin}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from config.settings import load_settings
    from engine.data.loader import load_bars
    from engine.features.build import build_from_frame

    settings = load_settings(**data_settings(args))  # the hours and data rules runs use
    bars = load_bars(args.data, args.interval, session=settings.session.times, data=settings.data)
    print(str(bars.quality), file=sys.stderr)
    report = build_from_frame(bars.frame, args.out, session=bars.session)
    print(report)
    return 0
