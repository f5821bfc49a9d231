"""Backtest throughput: our full pipeline against established backtesters, in one run.

  .venv/bin/python bench/bench_backtest.py [--repeat 5] [--symbols 100] [--days 250]

1. single symbol: ``sma_cross`` (10/30) on the real NIFTY 50 1-minute bars (09:15–15:29, ~92k
   bars) through the whole bus / risk / broker / portfolio path, no database, median of N runs;
   also once with the run recorded to SQLite.
2. anchors on the same bars and rule: backtesting.py (in this venv) and, if ``.venv-bench``
   exists (see bench/README.md), backtrader and NautilusTrader via bench/anchors/*.py.
3. a synthetic 100-symbol universe of 5-minute bars: symbol-bars per second and peak RSS
   (each measured in a fresh subprocess so peak memory is the run's own).
Prints a markdown table and appends it, dated, to docs/benchmarks.md with ``--write``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NIFTY = ROOT.parent / "shared" / "data" / "nse" / "NIFTY50_1min_2021.parquet"
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"


def ours_single(repeat: int) -> dict:
    from app.runners.backtest import run_backtest
    from config.settings import load_settings
    from engine.data.loader import load_bars
    from strategies.sma_cross import SmaCross, SmaCrossParams

    settings = load_settings(
        interval="1minute",
        costs={"model": "none"},
        session={"square_off_enabled": False},
        capital=10_000_000,
    )
    bars = load_bars([NIFTY], "1minute", session=settings.session.times)
    times, trades = [], 0
    asyncio.run(run_backtest(bars, SmaCross(SmaCrossParams(10, 30, 1)), settings))  # warm
    for _ in range(repeat):
        result = asyncio.run(run_backtest(bars, SmaCross(SmaCrossParams(10, 30, 1)), settings))
        times.append(result.elapsed_s)
        trades = len(result.trades)
    return {"bars": result.bars_processed, "times": times, "trades": trades}


def ours_with_store() -> dict:
    import tempfile

    from app.runners.backtest import run_backtest
    from config.settings import load_settings
    from engine.data.loader import load_bars
    from engine.store.database import open_database
    from engine.store.recorder import RunRecorder
    from strategies.sma_cross import SmaCross, SmaCrossParams

    settings = load_settings(
        interval="1minute", costs={"model": "none"}, session={"square_off_enabled": False}
    )
    bars = load_bars([NIFTY], "1minute", session=settings.session.times)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = RunRecorder(open_database(f"{tmp}/b.db"), "backtest")
        started = time.perf_counter()
        result = asyncio.run(
            run_backtest(bars, SmaCross(SmaCrossParams(10, 30, 1)), settings, recorder)
        )
        total = time.perf_counter() - started
    return {"bars": result.bars_processed, "seconds": total}


def backtesting_py(repeat: int) -> dict:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting import __version__ as version
    from backtesting.lib import crossover

    from config.sessions import NSE
    from engine.data.loader import load_bars

    frame = load_bars([NIFTY], "1minute", session=NSE).frame
    data = pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(),
            "High": frame["high"].to_numpy(),
            "Low": frame["low"].to_numpy(),
            "Close": frame["close"].to_numpy(),
            "Volume": frame["volume"].to_numpy(),
        },
        index=frame["ts"].dt.tz_localize(None),
    )

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class Cross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self):
            if crossover(self.fast, self.slow) and not self.position:
                self.buy(size=1)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    times, trades = [], 0
    os.environ["TQDM_DISABLE"] = "1"
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = Backtest(data, Cross, cash=10_000_000, commission=0, finalize_trades=True)
            started = time.perf_counter()
            stats = bt.run()
            times.append(time.perf_counter() - started)
        trades = len(stats["_trades"])
    return {"bars": len(data), "times": times, "trades": trades, "version": version}


def anchor(script: str, repeat: int) -> dict | None:
    if not BENCH_PY.exists():
        return None
    proc = subprocess.run(
        [
            str(BENCH_PY),
            str(ROOT / "bench" / "anchors" / script),
            "--data",
            str(NIFTY),
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        print(f"{script} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


UNIVERSE_SNIPPET = """
import asyncio, json, resource, sys, time
sys.path.insert(0, {root!r})
from config.settings import load_settings
from engine.data.synthetic import SyntheticMarket
from app.runners.backtest import run_backtest
from strategies.sma_cross import SmaCross, SmaCrossParams
bars = SyntheticMarket(symbols={symbols}, days={days}, seed=1).bars("5minute")
settings = load_settings(costs={{"model": "none"}})
best = None
for _ in range({repeat}):
    r = asyncio.run(run_backtest(bars, SmaCross(SmaCrossParams(10, 30, 1)), settings))
    best = r.elapsed_s if best is None else min(best, r.elapsed_s)
    times = getattr(sys.modules[__name__], "times", [])
print(json.dumps({{"symbol_bars": r.symbol_bars, "slices": r.bars_processed,
                   "seconds": r.elapsed_s, "best": best, "trades": len(r.trades),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def ours_universe(symbols: int, days: int, repeat: int) -> dict:
    code = UNIVERSE_SNIPPET.format(root=str(ROOT), symbols=symbols, days=days, repeat=repeat)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_single() -> float:
    code = (
        f"import sys, resource, asyncio; sys.path.insert(0, {str(ROOT)!r});"
        "from bench.bench_backtest import ours_single; ours_single(1);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--anchor-repeat", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--write", action="store_true", help="write to docs/benchmarks.md")
    args = parser.parse_args()

    mine = ours_single(args.repeat)
    mine_med = statistics.median(mine["times"])
    ours_bps = mine["bars"] / mine_med
    stored = ours_with_store()
    rss = peak_rss_single()
    rows = [("this engine (full pipeline, no DB)", ours_bps, mine["trades"], "1.00")]
    anchors = []
    bpy = backtesting_py(args.anchor_repeat)
    anchors.append(
        (
            f"backtesting.py {bpy['version']}",
            bpy["bars"] / statistics.median(bpy["times"]),
            bpy["trades"],
        )
    )
    for script in ("backtrader_sma.py", "nautilus_sma.py"):
        res = anchor(script, args.anchor_repeat)
        if res is not None:
            # closed round trips + a position still open at the end = backtesting.py's count
            trades = int(res["trades"] + res.get("open_position_at_end", 0))
            anchors.append((f"{res['framework']} {res['version']}", res["bars_per_second"], trades))
    for name, bps, trades in anchors:
        rows.append((name, bps, trades, f"{ours_bps / bps:.1f}×"))
    uni = ours_universe(args.symbols, args.days, 3)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"### Backtest throughput — {stamp}",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_backtest.py "
        f"--repeat {args.repeat} --symbols {args.symbols} --days {args.days}`.",
        f"Single symbol: NIFTY 50 1-minute bars 2021 (09:15–15:29), {mine['bars']:,} bars, "
        "sma_cross 10/30, market orders at next open, no costs; medians of "
        f"{args.repeat} (ours) / {args.anchor_repeat} (anchors) runs, same process session.",
        "",
        "| engine | bars/s | round trips | ours ÷ it |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {n} | {b:,.0f} | {t} | {r} |" for n, b, t, r in rows],
        "",
        f"- with the run recorded to SQLite (orders, fills, trades, {stored['bars']:,} equity "
        f"rows, one transaction): {stored['bars'] / stored['seconds']:,.0f} bars/s end to end",
        f"- peak RSS, single-symbol run (process total incl. data load): {rss:,.0f} MB",
        f"- {args.symbols}-symbol synthetic universe, 5-minute bars, {args.days} sessions "
        f"({uni['symbol_bars']:,} symbol-bars in {uni['slices']:,} slices): "
        f"{uni['symbol_bars'] / uni['best']:,.0f} symbol-bars/s (best of 3), "
        f"peak RSS {uni['peak_rss_mb']:,.0f} MB",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = ROOT / "docs" / "benchmarks.md"
        existing = path.read_text() if path.exists() else "# Benchmarks\n\n"
        path.write_text(existing.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
