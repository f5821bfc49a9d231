"""Decision latency on the paper/live path: bar close → order submitted, 97 symbols, the model
strategy with a full-size network (1.41M parameters) on the CPU, bar by bar (no precomputed
predictions — what the daemon does).

  .venv/bin/python bench/bench_decision_latency.py [--symbols 97] [--days 6] [--threads 2]

A 97-symbol synthetic market replays through the paper session (``trading_session``) at full
speed; for every bar the clock starts when the slice is published (the bar is closed and
known) and stops when the broker accepts each order born from it. Bars before the features
and the 60-bar window are ready are excluded. The network has random weights: latency does not
depend on what it learnt, and low entry thresholds make it trade often so that order paths are
measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.runners.paper import trading_session  # noqa: E402
from config.settings import load_settings  # noqa: E402
from engine.data.synthetic import SyntheticMarket  # noqa: E402
from engine.events import BarSlice  # noqa: E402
from engine.features.spec import FEATURE_NAMES, SPEC_HASH, SPEC_VERSION  # noqa: E402
from engine.store.database import open_database  # noqa: E402
from models.checkpoint import ModelBundle, save_bundle  # noqa: E402
from models.labels import LabelConfig  # noqa: E402
from models.network import IntradayClassifier, ModelConfig  # noqa: E402
from models.precision import precision_support  # noqa: E402
from models.scaler import Scaler  # noqa: E402
from strategies.model_strategy import ModelStrategy, ModelStrategyParams  # noqa: E402


def full_size_model(path: Path) -> None:
    torch.manual_seed(0)
    n = len(FEATURE_NAMES)
    bundle = ModelBundle(
        IntradayClassifier(ModelConfig(n_features=n)).eval(),
        Scaler(np.zeros(n), np.ones(n), 1), SPEC_HASH, tuple(FEATURE_NAMES), SPEC_VERSION,
        LabelConfig(), interval_minutes=5,
    )  # fmt: skip
    save_bundle(bundle, path)


async def measure(symbols: int, days: int, threads: int, precision: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.ckpt"
        full_size_model(model)
        bars = SyntheticMarket(symbols=symbols, days=days, seed=5).bars("5minute")
        params = ModelStrategyParams(
            model=str(model),
            entry_threshold=0.34,
            exit_threshold=0.3,
            threads=threads,
            precision=precision,
            notional=10_000.0,
        )
        session = trading_session(
            bars, ModelStrategy(params), load_settings("paper"), open_database(f"{tmp}/l.db")
        )
        bar_started: list[float] = [0.0]
        per_bar: list[float] = []
        to_order: list[float] = []
        broker = session.pipe.broker
        submit = broker.submit

        async def timed_submit(order):  # type: ignore[no-untyped-def]
            to_order.append(time.perf_counter() - bar_started[0])
            await submit(order)

        broker.submit = timed_submit  # type: ignore[method-assign]

        def start_clock(_bars: BarSlice) -> None:
            bar_started[0] = time.perf_counter()

        session.pipe.bus._routes[BarSlice].insert(0, start_clock)
        await session.run()
        per_bar = session.status.decision_latency_s
        ready_from = 260  # 199 warm-up bars of the slowest feature + a 60-bar window
    steady = per_bar[ready_from:] if len(per_bar) > ready_from else per_bar
    return {
        "bars": len(steady),
        "orders": len(to_order),
        "bar_p50_ms": 1000 * statistics.median(steady),
        "bar_p99_ms": 1000 * float(np.percentile(steady, 99)),
        "order_p50_ms": 1000 * statistics.median(to_order) if to_order else float("nan"),
        "order_p99_ms": 1000 * float(np.percentile(to_order, 99)) if to_order else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=97)
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    support = precision_support(args.precision)
    if not support.available:
        print(f"skipped: precision={args.precision} is not available here ({support.capability})")
        return
    result = asyncio.run(measure(args.symbols, args.days, args.threads, args.precision))
    print(
        f"| decision latency, {args.symbols} symbols, model strategy ({args.precision}, "
        f"{args.threads} threads), {result['bars']} steady bars, {result['orders']} orders | "
        f"bar close → order submitted p50 {result['order_p50_ms']:.1f} ms, "
        f"p99 {result['order_p99_ms']:.1f} ms | whole bar p50 {result['bar_p50_ms']:.1f} ms, "
        f"p99 {result['bar_p99_ms']:.1f} ms |"
    )


if __name__ == "__main__":
    main()
