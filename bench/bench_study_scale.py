"""Scale, measured: a seed-sized synthetic universe through feature build, a walk-forward study
(local Ray and ``--no-ray`` in the same run), the prediction cache, and CPU training throughput.

  .venv/bin/python bench/bench_study_scale.py [--quick] [--symbols 97] [--days 1000]
      [--study-months 6] [--train-months 3] [--write]

Each stage runs in its own child process so its wall time and peak memory are its own; peak
memory is the largest summed RSS of the child's whole process tree, sampled every 0.1 s (for the
Ray run that includes the raylet, the GCS and the workers), next to the child's own
``ru_maxrss``.

1. generate: ``SyntheticMarket`` 5-minute bars written as Parquet, generated in blocks of
   ``--block`` symbols (one seed per block) so the 1-minute intermediate stays bounded;
2. features: ``load_bars`` over the directory, then ``write_features`` (the batch build);
3. study: ``trader study walkforward --strategy model`` through ``app.cli.main`` on the last
   ``--study-months`` months, tiny models (``--epochs 1 --max-windows``, small hidden size),
   once with ``--no-ray`` and once on local Ray; per-fold wall time, Ray's overhead per fold,
   and the stitched out-of-sample metrics asserted identical;
4. cache: one fold's model on its test window — ``PrecomputedPredictor`` cold (computes every
   window) against warm (reads the cache file);
5. train: windows/s of the training step (forward, backward, clip, AdamW) at the default
   network size (``ModelConfig()``, batch 512) on random inputs, for ``--train-seconds``.

Prints markdown; ``--write`` appends it, dated, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


START = date(2021, 1, 1)  # the seed's period (2021-2024); 1000 sessions end in late 2024


# ---- child stages (run as `bench_study_scale.py --stage NAME ...`) ---------------------------


def _own_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_generate(work: Path, symbols: int, days: int, block: int) -> dict[str, Any]:
    from engine.data.synthetic import SyntheticMarket

    out = work / "bars"
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for start in range(0, symbols, block):
        n = min(block, symbols - start)
        frame = (
            SyntheticMarket(symbols=n, days=days, seed=100 + start, start=START)
            .bars("5minute")
            .frame
        )
        names = {
            old: f"SYN{start + j:03d}" for j, old in enumerate(sorted(frame["symbol"].unique()))
        }
        frame = frame[["ts", "symbol", "open", "high", "low", "close", "volume"]].copy()
        frame["symbol"] = frame["symbol"].map(names)
        frame.to_parquet(out / f"block{start:03d}.parquet", index=False)
        rows += len(frame)
    return {"rows": rows, "mb": sum(p.stat().st_size for p in out.iterdir()) / 2**20}


def stage_features(work: Path) -> dict[str, Any]:
    from config.sessions import NSE
    from engine.data.loader import load_bars
    from engine.features.build import split_by_symbol, write_features

    started = time.perf_counter()
    bars = load_bars([work / "bars"], "5minute", session=NSE)
    load_s = time.perf_counter() - started
    report = write_features(split_by_symbol(bars.frame), work / "features.parquet", session=NSE)
    return {
        "rows": report.bars,
        "symbols": report.symbols,
        "load_s": load_s,
        "build_s": report.seconds,
        "file_mb": (work / "features.parquet").stat().st_size / 2**20,
    }


def stage_study(argv: list[str]) -> dict[str, Any]:
    from app.cli import main

    started = time.perf_counter()
    rc = main(argv)
    return {"rc": rc, "inner_s": time.perf_counter() - started}


def stage_cache(work: Path, store: Path) -> dict[str, Any]:
    from config.sessions import NSE
    from engine.data.loader import load_bars
    from models.feature_source import table_from_loaded_bars
    from models.inference import Predictor
    from models.predictions import PrecomputedPredictor

    fold = json.loads((store / "study.json").read_text())["folds"][-1]
    model = next((store / f"fold-{fold['index']:02d}").glob("seed-*/done.json"))
    path = json.loads(model.read_text())["path"]
    start, end = (date.fromisoformat(str(fold[k])[:10]) for k in ("test_start", "test_end"))
    bars = load_bars([work / "bars"], "5minute", start, end, session=NSE)
    started = time.perf_counter()
    table = table_from_loaded_bars(bars)
    table_s = time.perf_counter() - started
    network = Predictor.from_paths([Path(path)], expected_spec_hash=None)
    cache = work / "prediction-cache"
    started = time.perf_counter()
    cold = PrecomputedPredictor(network, table, cache)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = PrecomputedPredictor(network, table, cache)
    warm_s = time.perf_counter() - started
    assert not cold.cache_hit and warm.cache_hit, "expected a miss, then a hit"
    return {
        "rows": len(table),
        "table_s": table_s,
        "cold_s": cold_s,
        "warm_s": warm_s,
        "window": network.bundles[0].config.window,
        "hidden": network.bundles[0].config.hidden_size,
    }


def stage_train(seconds: float, threads: int) -> dict[str, Any]:
    import torch
    from torch import nn

    from models.network import IntradayClassifier, ModelConfig, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ModelConfig()
    model = IntradayClassifier(cfg)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = nn.CrossEntropyLoss()
    batch = 512
    x = torch.randn(batch, cfg.window, cfg.n_features)
    y = torch.randint(0, cfg.num_classes, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()  # warm-up: allocator, oneDNN primitives
    n, started = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - started < seconds:
        step()
        n += 1
    elapsed = time.perf_counter() - started
    return {
        "parameters": count_parameters(model),
        "batches": n,
        "batch": batch,
        "window": cfg.window,
        "seconds": elapsed,
        "windows_per_s": n * batch / elapsed,
        "threads": threads,
        "cuda": torch.cuda.is_available(),
    }


def child_main(args: argparse.Namespace, rest: list[str]) -> None:
    work = Path(args.work)
    if args.stage == "generate":
        result = stage_generate(work, args.symbols, args.days, args.block)
    elif args.stage == "features":
        result = stage_features(work)
    elif args.stage == "study":
        result = stage_study(rest)
    elif args.stage == "cache":
        result = stage_cache(work, Path(args.store))
    else:
        result = stage_train(args.train_seconds, args.threads)
    result["own_rss_mb"] = _own_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ---- parent: run a stage, time it, sample its process tree's memory -------------------------


def run_stage(name: str, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, *argv]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):  # a process that just ended
                        total += p.memory_info().rss
            except psutil.Error:
                break
            peak[0] = max(peak[0], total / 2**20)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    lines = output.splitlines()
    result_line = next((ln for ln in reversed(lines) if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or result_line is None:
        sys.stdout.write(output[-4000:])
        raise SystemExit(f"stage {name} failed (exit {proc.returncode})")
    result = json.loads(result_line[len("RESULT ") :])
    result.update(wall_s=wall, tree_peak_mb=peak[0], output=lines)
    return result


def study_units(store: Path) -> tuple[float, float, int]:
    """(seconds inside training tasks, seconds inside backtest tasks, folds) from the store."""
    train = sum(json.loads(p.read_text())["seconds"] for p in store.glob("fold-*/seed-*/done.json"))
    backtest = sum(json.loads(p.read_text())["seconds"] for p in store.glob("fold-*/point-*.json"))
    return train, backtest, len(list(store.glob("fold-*")))


def comparable(study: dict[str, Any]) -> Any:
    """The numbers a study produced, without what names its run (ids, times, the store's
    directory, which appears in the model paths)."""
    numbers = {
        "results": {k: v["metrics"] for k, v in (study.get("results") or {}).items()},
        "folds": [(f["fold"], f["metrics"]) for f in study["folds"]],
    }
    return json.loads(json.dumps(numbers, default=str).replace(study["out_dir"], "STORE"))


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    from models.precision import cpu_capability, cpu_model

    return (
        f"{cpu_model()}; {cpu_capability()}; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["generate", "features", "study", "cache", "train"])
    ap.add_argument("--work", default="")
    ap.add_argument("--store", default="")
    ap.add_argument("--quick", action="store_true", help="smoke-sized (no figures)")
    ap.add_argument("--symbols", type=int, default=97)
    ap.add_argument("--days", type=int, default=1000, help="sessions (1000 ≈ 4 years)")
    ap.add_argument("--block", type=int, default=12, help="symbols generated per block")
    ap.add_argument("--study-months", type=int, default=6, help="study period: the last N months")
    ap.add_argument("--train-months", type=int, default=3)
    ap.add_argument("--max-windows", type=int, default=2000)
    ap.add_argument("--hidden-size", type=int, default=16)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument(
        "--entry-threshold", type=float, default=0.34, help="low: a 1-epoch model must trade"
    )
    ap.add_argument("--exit-threshold", type=float, default=0.30)
    ap.add_argument("--train-seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--write", action="store_true", help="append to docs/benchmarks.md")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, rest = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    if args.stage:
        child_main(args, rest)
        return 0
    if args.quick:
        args.symbols, args.days, args.block = 3, 70, 3
        args.study_months, args.train_months = 3, 2
        args.max_windows, args.train_seconds = 300, 2.0

    load_start = load()
    print(f"# study scale benchmark — {machine()}; load {load_start}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        common = ["--work", str(work)]
        gen = run_stage(
            "generate",
            [*common, "--symbols", str(args.symbols), "--days", str(args.days),
             "--block", str(args.block)],
        )  # fmt: skip
        print(f"generate: {gen['rows']:,} rows in {gen['wall_s']:.1f} s", flush=True)
        feats = run_stage("features", common)
        print(f"features: {feats['rows']:,} rows, build {feats['build_s']:.1f} s", flush=True)

        import pandas as pd

        last = pd.read_parquet(work / "bars" / "block000.parquet", columns=["ts"])["ts"].max()
        study_start = (last - pd.DateOffset(months=args.study_months)).date()
        flags = [
            "study", "walkforward", "--data", str(work / "bars"), "--strategy", "model",
            "--train", f"{args.train_months}M", "--test", "1M",
            "--start-date", str(study_start), "--epochs", "1",
            "--max-windows", str(args.max_windows), "--hidden-size", str(args.hidden_size),
            "--window", str(args.window), "--device", "cpu", "--patience", "1",
            "--param", f"entry_threshold={args.entry_threshold}",
            "--param", f"exit_threshold={args.exit_threshold}",
        ]  # fmt: skip
        studies: dict[str, dict[str, Any]] = {}
        for mode in ("no-ray", "ray"):
            run_dir = work / mode
            argv = [
                *flags, "--out", str(run_dir / "store"), "--db", f"sqlite:///{run_dir}/s.db",
                "--json", str(run_dir / "study.json"),
                *(["--no-ray"] if mode == "no-ray" else []),
            ]  # fmt: skip
            run_dir.mkdir()
            res = run_stage(
                "study", [*common, "--", *argv], env={"TRADER_HOME": str(run_dir / "home")}
            )
            res["train_s"], res["backtest_s"], res["folds"] = study_units(run_dir / "store")
            res["study"] = json.loads((run_dir / "study.json").read_text())
            studies[mode] = res
            print(f"study {mode}: {res['folds']} folds, {res['wall_s']:.1f} s", flush=True)
        seq, ray = studies["no-ray"], studies["ray"]
        identical = comparable(seq["study"]) == comparable(ray["study"])
        assert identical, "Ray and --no-ray gave different study metrics"
        cache = run_stage("cache", [*common, "--store", str(work / "no-ray" / "store")])
        print(f"cache: cold {cache['cold_s']:.2f} s, warm {cache['warm_s']:.4f} s", flush=True)
    train = run_stage(
        "train", ["--train-seconds", str(args.train_seconds), "--threads", str(args.threads)]
    )
    load_end = load()

    folds = seq["folds"]
    per_fold = {m: s["wall_s"] / folds for m, s in studies.items()}
    inner = {m: (s["train_s"] + s["backtest_s"]) / folds for m, s in studies.items()}
    points = seq["study"].get("results", {}).get("0", {}).get("metrics", {})
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    cmd = "bench/bench_study_scale.py" + (" --quick" if args.quick else "")
    gpu = "CUDA available" if train["cuda"] else "no GPU available to this run (CPU only)"
    lines = [
        f"### Scale: synthetic seed-sized universe — {stamp} UTC",
        "",
        f"Machine: {machine()}; torch threads {args.threads}; {gpu}. Load average (1/5/15 min) "
        f"at start {load_start}, at end {load_end} (a shared machine: compare figures of this "
        f"run with each other, as ratios). Command: `.venv/bin/python {cmd}`.",
        f"Scale: {args.symbols} symbols × {args.days} sessions of 5-minute bars "
        f"= {gen['rows']:,} rows (`SyntheticMarket`, generated in blocks of {args.block} "
        f"symbols, {gen['mb']:,.0f} MiB of Parquet).",
        "",
        "| stage | wall s | peak RSS, process tree MiB | peak RSS, own MiB | notes |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| generate + write bars | {gen['wall_s']:.1f} | {gen['tree_peak_mb']:,.0f} | "
        f"{gen['own_rss_mb']:,.0f} | {gen['rows']:,} rows |",
        f"| feature build (load + `write_features`) | {feats['wall_s']:.1f} | "
        f"{feats['tree_peak_mb']:,.0f} | {feats['own_rss_mb']:,.0f} | "
        f"load {feats['load_s']:.1f} s, "
        f"build {feats['build_s']:.1f} s = {feats['rows'] / feats['build_s']:,.0f} rows/s, "
        f"{feats['file_mb']:,.0f} MiB file |",
        *[
            f"| study, {m} ({s['folds']} folds) | {s['wall_s']:.1f} | {s['tree_peak_mb']:,.0f} | "
            f"{s['own_rss_mb']:,.0f} | per fold {per_fold[m]:.1f} s wall; inside tasks "
            f"{inner[m]:.1f} s/fold (train {s['train_s'] / folds:.1f}, backtest "
            f"{s['backtest_s'] / folds:.1f}) |"
            for m, s in studies.items()
        ],
        f"| prediction cache (last fold's test window, {cache['rows']:,} rows) | "
        f"{cache['wall_s']:.1f} | {cache['tree_peak_mb']:,.0f} | {cache['own_rss_mb']:,.0f} | "
        f"cold {cache['cold_s']:.2f} s, warm {cache['warm_s']:.4f} s "
        f"(**{cache['cold_s'] / cache['warm_s']:,.0f}×**); hidden {cache['hidden']}, "
        f"window {cache['window']} |",
        f"| CPU training, default network ({train['parameters']:,} parameters, batch "
        f"{train['batch']}, window {train['window']}) | {train['seconds']:.1f} | "
        f"{train['tree_peak_mb']:,.0f} | {train['own_rss_mb']:,.0f} | "
        f"**{train['windows_per_s']:,.0f} windows/s** ({train['batches']} batches) |",
        "",
        f"- Study: `trader study walkforward --strategy model --train {args.train_months}M "
        f"--test 1M --epochs 1 --max-windows {args.max_windows} --hidden-size "
        f"{args.hidden_size} --window {args.window} --param "
        f"entry_threshold={args.entry_threshold} --param "
        f"exit_threshold={args.exit_threshold}` on the last {args.study_months} months; "
        f"{folds} folds × 1 seed. Stitched out-of-sample metrics and every fold's metrics "
        f"identical between Ray and --no-ray: {identical} (asserted). Stitched: return "
        f"{_num(points.get('total_return'), '.4%')}, Sharpe {_num(points.get('sharpe'), '.2f')}, "
        f"{int(points.get('trade_count') or 0)} trades.",
        f"- Ray against --no-ray, same run: wall {ray['wall_s']:.1f} s vs {seq['wall_s']:.1f} s "
        f"(ratio {ray['wall_s'] / seq['wall_s']:.2f}), i.e. "
        f"{per_fold['ray'] - per_fold['no-ray']:+.1f} s per fold. --no-ray spends "
        f"{per_fold['no-ray'] - inner['no-ray']:.1f} s/fold outside its tasks (process start, "
        "planning = loading the bars, storing). Ray runs up to "
        f"{os.cpu_count()} tasks at once: inside its tasks a fold took "
        f"{inner['ray'] / inner['no-ray']:.2f}× the sequential seconds (tasks contend for the "
        "same cores), so on this machine Ray buys no parallel speed-up.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write and not args.quick:
        path = ROOT / "docs" / "benchmarks.md"
        path.write_text(path.read_text().rstrip() + "\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
