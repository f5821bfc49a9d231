"""``trader demo``: the engine's main job on an embedded default, no downloads, no credentials.

A seeded synthetic market goes through the same loader validation, pipeline, risk and store as
real data would.
"""

from __future__ import annotations

import argparse

from engine.data.synthetic import SyntheticMarket


def run_demo(args: argparse.Namespace) -> int:
    from engine.cli import prepare_run, run_and_report

    prepared = prepare_run(args)
    market = SyntheticMarket(symbols=args.symbols, days=args.days, seed=args.seed)
    bars = market.bars(args.interval)
    print(
        f"synthetic market: {args.symbols} symbols × {args.days} sessions, seed {args.seed}, "
        f"{args.interval} bars"
    )
    return run_and_report(args, prepared, bars, market.fingerprint())
