"""This checkout against another one, measured in the same run: did a change make anything slower?

    git worktree add --detach ../before <commit>
    .venv/bin/python bench/bench_against.py --baseline ../before [--rounds 3] [--write]

Every measurement runs in a fresh subprocess with one tree first on ``sys.path`` (the same
venv, so the same libraries), and the trees alternate (baseline, current, baseline, current,
…) so that drifting load on a shared machine hits both alike. Reported: the median per tree
and current ÷ baseline (> 1 is faster for throughputs, < 1 is faster for times).

What is measured, each through the tree's own code and bench scripts:
- backtest, one symbol: ``sma_cross`` 10/30 on the NIFTY 50 1-minute bars (~92k), bars/s;
- backtest, 100 symbols: synthetic 5-minute universe, 60 sessions, symbol-bars/s;
- features: 89 features per symbol-bar in a 100-symbol slice, µs (``bench_features.bench_ours``);
- model inference: 97 windows of 60×89 through the 1.41M-parameter network, fp32 p50, ms;
- decision latency: bar close → order submitted, 97 symbols, paper path, p50 and p99, ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NIFTY = ROOT.parent / "shared" / "data" / "nse" / "NIFTY50_1min_2021.parquet"

BACKTEST = """
import asyncio, json, sys
sys.path.insert(0, {tree!r})
try:
    from app.runners.backtest import run_backtest
except ImportError:  # trees from before the app layer
    from engine.runners.backtest import run_backtest
from config.settings import load_settings
from engine.data.loader import load_bars
from engine.data.synthetic import SyntheticMarket
from strategies.sma_cross import SmaCross, SmaCrossParams
if {universe}:
    bars = SyntheticMarket(symbols=100, days=60, seed=1).bars("5minute")
    settings = load_settings(costs={{"model": "none"}})
else:
    settings = load_settings(interval="1minute", costs={{"model": "none"}},
                             session={{"square_off_enabled": False}}, capital=10_000_000)
    try:  # trees where the run's session hours are passed down
        bars = load_bars([{nifty!r}], "1minute", session=settings.session.times)
    except (TypeError, AttributeError):
        bars = load_bars([{nifty!r}], "1minute")
run = lambda: asyncio.run(run_backtest(bars, SmaCross(SmaCrossParams(10, 30, 1)), settings))
run()  # warm: numba caches, imports
results = [run() for _ in range(3)]
best = min(r.elapsed_s for r in results)
count = results[0].symbol_bars if {universe} else results[0].bars_processed
print(json.dumps({{"value": count / best}}))
"""

FEATURES = """
import importlib.util, json, sys
sys.path.insert(0, {tree!r})
spec = importlib.util.spec_from_file_location("bf", {script!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
slice_us, _kernel_us = module.bench_ours(3000, 100, 3)
print(json.dumps({{"value": slice_us}}))
"""


def run_json(code: str) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1200, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["value"])


def run_script(tree: Path, script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(tree / "bench" / script), *args],
        capture_output=True, text=True, timeout=1200, check=False, cwd=tree,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return proc.stdout


INFERENCE = """
import json, statistics, sys, time
sys.path.insert(0, {tree!r})
import numpy as np, torch
from models.checkpoint import ModelBundle
from models.inference import Predictor
from models.network import IntradayClassifier, ModelConfig
from models.scaler import Scaler
torch.set_num_threads(2)
torch.manual_seed(0)
bundle = ModelBundle(IntradayClassifier(ModelConfig()).eval(), Scaler(np.zeros(89), np.ones(89), 1),
                     "bench")
predictor = Predictor([bundle])
windows = np.random.default_rng(0).normal(size=(97, 60, 89)).astype(np.float32)
predictor.predict(windows)
times = []
for _ in range(30):
    started = time.perf_counter()
    predictor.predict(windows)
    times.append(1000 * (time.perf_counter() - started))
print(json.dumps({{"value": statistics.median(times)}}))
"""


def inference_p50(tree: Path) -> float:
    """fp32 only: a tree from before the bf16 probe crashes in its own script's bf16 pass on a
    CPU without bf16, so both trees run this same snippet against their own code."""
    return run_json(INFERENCE.format(tree=str(tree)))


def latency(tree: Path) -> tuple[float, float]:
    out = run_script(tree, "bench_decision_latency.py", "--days", "6")
    found = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms \| whole bar", out)
    if found is None:
        raise RuntimeError(f"no latency line in: {out[-500:]}")
    return float(found.group(1)), float(found.group(2))


#: name (with unit) → measure(tree) → value
MEASURES = {
    "backtest, one symbol (bars/s)": lambda t: run_json(
        BACKTEST.format(tree=str(t), nifty=str(NIFTY), universe=False)
    ),
    "backtest, 100 symbols (symbol-bars/s)": lambda t: run_json(
        BACKTEST.format(tree=str(t), nifty=str(NIFTY), universe=True)
    ),
    "features, 100-symbol slice (µs/symbol-bar)": lambda t: run_json(
        FEATURES.format(tree=str(t), script=str(t / "bench" / "bench_features.py"))
    ),
    "model inference, 97 windows fp32 p50 (ms)": inference_p50,
    "decision latency p50 (ms)": lambda t: latency(t)[0],
    "decision latency p99 (ms)": lambda t: latency(t)[1],
}
NOISE = 0.03  # run-to-run spread of these medians on a shared 2-core machine
HIGHER_IS_BETTER = {name: name.startswith("backtest") for name in MEASURES}  # throughputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated substrings of measure names")
    ap.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.run_all import machine

    trees = {"baseline": args.baseline.resolve(), "current": ROOT}
    values: dict[str, dict[str, list[float]]] = {}
    latency_cache: dict[tuple[str, int], tuple[float, float]] = {}
    for name, measure in MEASURES.items():
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        values[name] = {"baseline": [], "current": []}
        for round_ in range(args.rounds):
            for label, tree in trees.items():
                if name.startswith("decision latency"):  # one run gives both percentiles
                    key = (label, round_)
                    if key not in latency_cache:
                        latency_cache[key] = latency(tree)
                    value = latency_cache[key][0 if "p50" in name else 1]
                else:
                    value = measure(tree)
                values[name][label].append(value)
                print(f"{name} [{label} {round_ + 1}/{args.rounds}]: {value:,.3f}", flush=True)
    lines = [
        f"### Same-run comparison against {args.baseline.name} — "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`.venv/bin/python bench/bench_against.py --baseline {args.baseline} "
        f"--rounds {args.rounds}` on {machine()}; trees alternated, medians of {args.rounds}.",
        "",
        "| measure | baseline | current | current ÷ baseline | |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, per_tree in values.items():
        base, cur = statistics.median(per_tree["baseline"]), statistics.median(per_tree["current"])
        ratio = cur / base
        gain = ratio if HIGHER_IS_BETTER[name] else 1 / ratio  # > 1: current is faster
        verdict = "same (±3%)" if abs(gain - 1) <= NOISE else ("faster" if gain > 1 else "slower")
        lines.append(f"| {name} | {base:,.3f} | {cur:,.3f} | {ratio:.3f} | {verdict} |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.write:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
