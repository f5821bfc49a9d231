"""Run every benchmark in one session, so figures and their anchors share a machine and a day.

    .venv/bin/python bench/run_all.py [--quick] [--only backtest,features,...] [--write]

Prints the machine (CPU model, the flags that decide the fast paths, torch's CPU capability)
and then each benchmark's own output; ends with a table of what ran, how long it took and
whether it succeeded. ``--quick`` shrinks every benchmark to a smoke-sized run (seconds, not
minutes: for checking that they still work, not for figures). ``--write`` lets the benchmarks
that can append their results to docs/ do so (the features benchmark always rewrites
docs/benchmarks_features.md in a full run). Exit status 1 if any benchmark failed.
Benchmarks that need a CPU feature this machine lacks (bf16) say so and are skipped, not failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name → (script, full-size arguments, --quick arguments, accepts --write)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], bool]] = {
    "backtest": (
        "bench_backtest.py",
        ["--repeat", "7", "--symbols", "100", "--days", "60"],
        ["--repeat", "1", "--anchor-repeat", "1", "--symbols", "10", "--days", "5"],
        True,
    ),
    "features": (
        "bench_features.py",
        [],
        [
            "--bars",
            "300",
            "--symbols",
            "10",
            "--talipp-bars",
            "200",
            "--repeats",
            "1",
            "--build-symbols",
            "1",
            "--build-bars",
            "2000",
            "--out",
            os.devnull,  # a smoke run must not overwrite docs/benchmarks_features.md
        ],
        False,
    ),
    "study-scale": (
        "bench_study_scale.py",
        [],
        ["--quick"],
        True,
    ),
    "inference": ("bench_model_inference.py", [], ["--repeats", "3"], False),
    "latency-fp32": ("bench_decision_latency.py", ["--precision", "fp32"], ["--days", "2"], False),
    "latency-bf16": (
        "bench_decision_latency.py",
        ["--precision", "bf16"],
        ["--precision", "bf16", "--days", "2"],
        False,
    ),
}


def machine() -> str:
    import torch

    from models.precision import cpu_capability, cpu_model

    return (
        f"{cpu_model()}; {cpu_capability()}; Python {platform.python_version()}; "
        f"torch {torch.__version__}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke-sized runs (no figures)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument("--write", action="store_true", help="let benchmarks append to docs/")
    args = ap.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    print(f"# benchmarks {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}", flush=True)
    summary: list[tuple[str, int, float]] = []
    for name in chosen:
        script, full, quick, writes = BENCHMARKS[name]
        cmd = [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full)]
        if args.write and writes and not args.quick:
            cmd.append("--write")
        print(f"\n## {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        summary.append((name, rc, time.perf_counter() - start))
    print("\n| benchmark | exit | seconds |\n| --- | ---: | ---: |")
    for name, rc, seconds in summary:
        print(f"| {name} | {rc} | {seconds:.1f} |")
    return 1 if any(rc for _, rc, _ in summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
