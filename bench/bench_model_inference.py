"""Benchmark: one 97-symbol slice (97 windows × 60 bars × 89 features) through the classifier.

Budget (docs/DESIGN.md): ≤ 50 ms p50 on the 2-core CPU. Measures the fp32 path and the bf16
autocast path (with the max logit deviation from fp32), plus the ring-buffer push + gather that
precede the forward pass in live inference. With ``--model`` the weights of a real checkpoint
are used (deviation on trained weights is the number that matters); otherwise random weights.
With ``--data`` (bar files) it also times the backtest prediction step (with ``--model``'s
weights if that model matches the running feature spec, else random weights stamped with it):
every window predicted in large batches (first run) against the same predictions read back
from the on-disk cache (repeat run).

    .venv/bin/python bench/bench_model_inference.py [--model M.ckpt] [--threads 2] [--repeats 30]
        [--data ../shared/data/nse]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.checkpoint import ModelBundle, load_bundle
from models.inference import FeatureRing, Predictor
from models.network import IntradayClassifier, ModelConfig, count_parameters
from models.precision import precision_support
from models.scaler import Scaler


def timings_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1e3)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "min_ms": round(ordered[0], 2),
    }


def bench_cache(bundle: ModelBundle, data: list[str]) -> dict[str, object]:
    """Seconds for the first (computed) and repeated (cached) backtest predictions."""
    import tempfile

    from config.sessions import NSE
    from models.checkpoint import save_bundle
    from models.feature_source import table_from_bars
    from models.predictions import PrecomputedPredictor

    table, _ = table_from_bars(data, "5minute", session=NSE)
    weights = "model" if bundle.spec_hash == table.spec_hash else "random"
    if weights == "random":
        torch.manual_seed(0)
        bundle = ModelBundle(
            IntradayClassifier(bundle.config).eval(), bundle.scaler, table.spec_hash
        )
    with tempfile.TemporaryDirectory() as cache:
        model = Path(cache) / "model.ckpt"
        save_bundle(bundle, model)
        network = Predictor.from_paths([model], expected_spec_hash=None)
        started = time.perf_counter()
        assert PrecomputedPredictor(network, table, cache).cache_hit is False
        first = time.perf_counter() - started
        started = time.perf_counter()
        assert PrecomputedPredictor(network, table, cache).cache_hit is True
        cached = time.perf_counter() - started
    return {
        "weights": weights,
        "rows": len(table),
        "first_s": round(first, 3),
        "cached_s": round(cached, 4),
        "speedup": round(first / cached, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model file (default: random weights)")
    ap.add_argument("--symbols", type=int, default=97)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--data", nargs="+", help="bar files: also time batched vs cached predictions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        bundle = load_bundle(args.model, expected_spec_hash=None)
    else:
        torch.manual_seed(0)
        model = IntradayClassifier(ModelConfig()).eval()
        bundle = ModelBundle(model, Scaler(np.zeros(89), np.ones(89), 1), "bench")
    cfg = bundle.config
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(args.symbols, cfg.window, cfg.n_features)).astype(np.float32)
    windows = windows * bundle.scaler.scale.astype(np.float32) + bundle.scaler.mean.astype(
        np.float32
    )
    result: dict[str, object] = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "parameters": count_parameters(bundle.model),
        "batch": list(windows.shape),
    }
    reference = None
    for precision in ("fp32", "bf16"):
        support = precision_support(precision, args.device)
        if not support.available:
            result[precision] = {"skipped": f"not available here ({support.capability})"}
            continue
        predictor = Predictor([bundle], device=args.device, precision=precision)

        def forward(p: Predictor = predictor) -> None:
            p.predict(windows)

        ms = timings_ms(forward, args.repeats)
        result[precision] = summary(ms)
        logits = predictor.logits(windows)[0].cpu()
        if reference is None:
            reference = logits
        else:
            dev = (logits - reference).abs()
            result[precision]["max_logit_dev"] = round(float(dev.max()), 5)  # type: ignore[index]
            result[precision]["argmax_agreement"] = float(  # type: ignore[index]
                (logits.argmax(1) == reference.argmax(1)).float().mean()
            )
    ring = FeatureRing(cfg.window, cfg.n_features, capacity=args.symbols)
    sid = np.arange(args.symbols, dtype=np.int64)
    ready = np.ones(args.symbols, dtype=bool)
    row = windows[:, 0, :].copy()
    for _ in range(cfg.window):
        ring.push(sid, row, ready)

    def ring_step() -> None:
        ring.push(sid, row, ready)
        ring.windows(sid)

    result["ring_push_gather"] = summary(timings_ms(ring_step, args.repeats * 3))
    if args.data:
        result["backtest_predictions"] = bench_cache(bundle, args.data)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
