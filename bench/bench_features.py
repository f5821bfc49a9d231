"""Benchmark of the 89-feature calculator, with its anchors measured in the same run.

What is measured (all on synthetic random-walk bars, after a warm-up call so numba's cache is
loaded):

- ours, 100-symbol slice: ``FeatureCalculator.update`` over a 100-symbol universe, per
  symbol-bar, all 89 features (and the bare kernel without the Python wrapper);
- ours, lone symbol: the same with a one-symbol slice, per bar;
- talipp (incremental, pure Python) on the 40-series subset of the issue (SMA/EMA x6, RSI x3,
  MACD, Bollinger, ATR, NATR, ADX, +DI, -DI, CCI, Stoch, Williams %R, OBV, MFI, ROC x4, StdDev
  x4), per bar of one symbol — talipp has no MFI, so it runs 39 of the 40 series;
- TA-Lib ``talib.stream``: in this TA-Lib (0.8) these are incremental stream objects, updated
  once per bar; plus the classic "recompute the last value from a trailing window every bar"
  pattern (what ``talib.stream`` did in older releases), per bar;
- TA-Lib batch: the subset over whole arrays, per bar (not incremental);
- import-to-first-slice in a fresh interpreter with the numba cache warm;
- batch build (``write_features``) bars/s and the child process's peak RSS for a synthetic set
  of ``--build-symbols`` x ``--build-bars`` (defaults are small; the issue's full size is
  97 x 73000 ≈ 7.1M bars).

Usage: ``python bench/bench_features.py [--bars 3000] [--build-symbols 97 --build-bars 73000]``.
Writes a markdown table to stdout and to docs/benchmarks_features.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from config.sessions import IST, NSE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = 1_641_181_500_000_000_000  # 2022-01-03 09:15 IST
STEP = 300_000_000_000


def random_walk(n_bars: int, n_symbols: int, seed: int = 0) -> dict[str, np.ndarray]:
    """[n_bars, n_symbols] OHLCV (C order, so a bar's row is a contiguous slice)."""
    rng = np.random.default_rng(seed)
    close = 500.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, (n_bars, n_symbols)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.001, (n_bars, n_symbols)))
    return {
        "open": open_,
        "high": np.maximum(open_, close) * (1 + wick),
        "low": np.minimum(open_, close) * (1 - wick),
        "close": close,
        "volume": rng.integers(0, 100_000, (n_bars, n_symbols)).astype(np.float64),
    }


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeats))


# ---- ours ----------------------------------------------------------------------------------


def bench_ours(n_bars: int, n_symbols: int, repeats: int) -> tuple[float, float]:
    """(µs per symbol-bar through FeatureCalculator.update, µs through the bare kernel)."""
    from engine.features import kernels
    from engine.features.calculator import FeatureCalculator

    data = random_walk(n_bars, n_symbols)
    rows = [
        tuple(np.ascontiguousarray(data[k][i]) for k in ("open", "high", "low", "close", "volume"))
        for i in range(n_bars)
    ]
    sid = np.arange(n_symbols, dtype=np.int64)
    sess = np.zeros(n_symbols, dtype=np.bool_)
    FeatureCalculator(1, session=NSE).update(sid[:1], 0, *(r[:1] for r in rows[0]), sess[:1])

    def wrapped() -> float:
        calc = FeatureCalculator(n_symbols, session=NSE)
        start = time.perf_counter()
        for i, (o, h, lo, c, v) in enumerate(rows):
            calc.update(sid, T0 + i * STEP, o, h, lo, c, v, sess)
        return (time.perf_counter() - start) / (n_bars * n_symbols) * 1e6

    def bare() -> float:
        fs, ist = kernels.new_state(n_symbols)
        out = np.empty((n_symbols, 89), dtype=np.float32)
        ready = np.empty(n_symbols, dtype=np.bool_)
        hours = (NSE.open_minute, NSE.length_minutes)
        start = time.perf_counter()
        for i, (o, h, lo, c, v) in enumerate(rows):
            kernels.update_slice(
                fs, ist, sid, T0 + i * STEP, o, h, lo, c, v, sess, *hours, out, ready
            )
        return (time.perf_counter() - start) / (n_bars * n_symbols) * 1e6

    return best_of(repeats, wrapped), best_of(repeats, bare)


# ---- anchors: the 40-series subset ------------------------------------------------------------

SPANS = (5, 10, 20, 50, 100, 200)


def bench_talipp(n_bars: int, repeats: int) -> float:
    from talipp.indicators import (
        ADX,
        ATR,
        BB,
        CCI,
        EMA,
        MACD,
        NATR,
        OBV,
        ROC,
        RSI,
        SMA,
        StdDev,
        Stoch,
        Williams,
    )
    from talipp.ohlcv import OHLCV

    d = random_walk(n_bars, 1)
    bars = [
        OHLCV(d["open"][i, 0], d["high"][i, 0], d["low"][i, 0], d["close"][i, 0], d["volume"][i, 0])
        for i in range(n_bars)
    ]

    def run() -> float:
        on_close = [SMA(n) for n in SPANS] + [EMA(n) for n in SPANS]
        on_close += [RSI(n) for n in (7, 14, 21)] + [MACD(12, 26, 9), BB(20, 2.0)]
        on_close += [ROC(n) for n in (5, 10, 20, 60)] + [StdDev(n) for n in (5, 10, 20, 60)]
        on_bar = [ATR(14), NATR(14), ADX(14, 14), CCI(20), Stoch(14, 3), Williams(14), OBV()]
        start = time.perf_counter()
        for bar in bars:
            for ind in on_close:
                ind.add(bar.close)
            for ind in on_bar:
                ind.add(bar)
        return (time.perf_counter() - start) / n_bars * 1e6

    return best_of(repeats, run)


def _subset_streams(d: dict[str, np.ndarray], warm: int) -> list[tuple[object, tuple[str, ...]]]:
    import talib.stream as ts

    h, lo, c, v = (np.ascontiguousarray(d[k][:warm, 0]) for k in ("high", "low", "close", "volume"))
    C, HLC, HLCV = ("close",), ("high", "low", "close"), ("high", "low", "close", "volume")
    streams: list[tuple[object, tuple[str, ...]]] = []
    streams += [(ts.SMA(c, timeperiod=n), C) for n in SPANS]
    streams += [(ts.EMA(c, timeperiod=n), C) for n in SPANS]
    streams += [(ts.RSI(c, timeperiod=n), C) for n in (7, 14, 21)]
    streams += [(ts.MACD(c, 12, 26, 9), C), (ts.BBANDS(c, 20, 2.0, 2.0, 0), C)]
    streams += [(ts.ATR(h, lo, c, 14), HLC), (ts.NATR(h, lo, c, 14), HLC)]
    streams += [(ts.ADX(h, lo, c, 14), HLC), (ts.PLUS_DI(h, lo, c, 14), HLC)]
    streams += [(ts.MINUS_DI(h, lo, c, 14), HLC), (ts.CCI(h, lo, c, 20), HLC)]
    streams += [(ts.STOCH(h, lo, c, 14, 3, 0, 3, 0), HLC), (ts.WILLR(h, lo, c, 14), HLC)]
    streams += [(ts.OBV(c, v), ("close", "volume")), (ts.MFI(h, lo, c, v, 14), HLCV)]
    streams += [(ts.ROC(c, timeperiod=n), C) for n in (5, 10, 20, 60)]
    streams += [(ts.STDDEV(c, timeperiod=n, nbdev=1.0), C) for n in (5, 10, 20, 60)]
    return streams


def bench_talib_stream(n_bars: int, repeats: int, warm: int = 300) -> float:
    d = random_walk(n_bars + warm, 1)
    cols = {k: d[k][:, 0].tolist() for k in ("open", "high", "low", "close", "volume")}

    def run() -> float:
        streams = [(s.update, inputs) for s, inputs in _subset_streams(d, warm)]
        start = time.perf_counter()
        for i in range(warm, warm + n_bars):
            bar = {k: cols[k][i] for k in ("high", "low", "close", "volume")}
            for update, inputs in streams:
                update(*(bar[k] for k in inputs))
        return (time.perf_counter() - start) / n_bars * 1e6

    return best_of(repeats, run)


def _subset_batch(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> None:
    import talib

    for n in SPANS:
        talib.SMA(c, n)
        talib.EMA(c, n)
    for n in (7, 14, 21):
        talib.RSI(c, n)
    talib.MACD(c, 12, 26, 9)
    talib.BBANDS(c, 20, 2.0, 2.0, 0)
    talib.ATR(h, lo, c, 14)
    talib.NATR(h, lo, c, 14)
    talib.ADX(h, lo, c, 14)
    talib.PLUS_DI(h, lo, c, 14)
    talib.MINUS_DI(h, lo, c, 14)
    talib.CCI(h, lo, c, 20)
    talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    talib.WILLR(h, lo, c, 14)
    talib.OBV(c, v)
    talib.MFI(h, lo, c, v, 14)
    for n in (5, 10, 20, 60):
        talib.ROC(c, n)
        talib.STDDEV(c, n, 1.0)


def bench_talib_recompute(n_bars: int, repeats: int, window: int = 400) -> float:
    """The old ``talib.stream`` pattern: recompute the subset on a trailing window each bar."""
    d = random_walk(n_bars + window, 1)
    h, lo, c, v = (np.ascontiguousarray(d[k][:, 0]) for k in ("high", "low", "close", "volume"))

    def run() -> float:
        start = time.perf_counter()
        for i in range(window, window + n_bars):
            s = slice(i - window, i)
            _subset_batch(h[s], lo[s], c[s], v[s])
        return (time.perf_counter() - start) / n_bars * 1e6

    return best_of(repeats, run)


def bench_talib_batch(n_bars: int, repeats: int) -> float:
    d = random_walk(n_bars, 1)
    h, lo, c, v = (np.ascontiguousarray(d[k][:, 0]) for k in ("high", "low", "close", "volume"))

    def run() -> float:
        start = time.perf_counter()
        _subset_batch(h, lo, c, v)
        return (time.perf_counter() - start) / n_bars * 1e6

    return best_of(repeats, run)


# ---- start-up and batch build (in child processes) -----------------------------------------

FIRST_SLICE = """
import time
t0 = time.perf_counter()
import numpy as np
from config.sessions import NSE
from engine.features.calculator import FeatureCalculator
k = 100
calc = FeatureCalculator(k, session=NSE)
x = np.full(k, 100.0)
values, ready = calc.update(np.arange(k), 1641181500000000000, x, x + 1, x - 1, x, x,
                            np.ones(k, dtype=bool))
print(time.perf_counter() - t0)
"""


def bench_first_slice(repeats: int) -> tuple[float, float]:
    """(seconds from first import to first slice, whole child wall time), numba cache warm."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", FIRST_SLICE], check=True, env=env, capture_output=True)
    inner, outer = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", FIRST_SLICE], check=True, env=env, capture_output=True, text=True
        )
        outer.append(time.perf_counter() - start)
        inner.append(float(out.stdout.strip()))
    return statistics.median(inner), statistics.median(outer)


def synthetic_symbols(n_symbols: int, n_bars: int) -> Iterator[pd.DataFrame]:
    """One synthetic symbol frame at a time (75 bars per session, weekdays)."""
    per_day = 75
    days = pd.bdate_range("2015-01-01", periods=n_bars // per_day + 1).values
    minutes = (NSE.open_minute + 5 * np.arange(per_day)) * 60_000_000_000
    naive = (days[:, None] + minutes.astype("timedelta64[ns]")[None, :]).ravel()[:n_bars]
    stamps = pd.DatetimeIndex(naive).tz_localize(IST)
    for j in range(n_symbols):
        d = random_walk(n_bars, 1, seed=j)
        frame = pd.DataFrame({k: d[k][:, 0] for k in d})
        frame.insert(0, "symbol", f"SYM{j:03d}")
        frame.insert(0, "ts", stamps)
        yield frame


BUILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_features import synthetic_symbols
from config.sessions import NSE
from engine.features.build import write_features
t0 = time.perf_counter()
report = write_features(synthetic_symbols({symbols}, {bars}), {out!r}, session=NSE)
seconds = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"bars": report.bars, "seconds": seconds, "rss_mb": rss_mb}}))
"""


def bench_build(n_symbols: int, n_bars: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "features.parquet")
        code = BUILD.format(root=str(ROOT), bench=str(ROOT / "bench"), symbols=n_symbols,
                            bars=n_bars, out=out)  # fmt: skip
        res = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        )
        result = json.loads(res.stdout.strip().splitlines()[-1])
        result["file_mb"] = Path(out).stat().st_size / 2**20
    return result


# ---- report ------------------------------------------------------------------------------------


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), "?"
        )
    except OSError:
        model = platform.processor() or "?"
    return f"{model}, {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}"


def versions() -> str:
    import numba
    import talib
    import talipp

    talipp_version = getattr(talipp, "__version__", None)
    if talipp_version is None:
        from importlib.metadata import version

        talipp_version = version("talipp")
    return (
        f"numba {numba.__version__}, numpy {np.__version__}, TA-Lib {talib.__ta_version__.decode()}"
        f" (python ta-lib {talib.__version__}), talipp {talipp_version}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bars", type=int, default=3000, help="bars per streaming run")
    p.add_argument("--symbols", type=int, default=100, help="symbols in the slice")
    p.add_argument("--talipp-bars", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--build-symbols", type=int, default=4)
    p.add_argument("--build-bars", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks_features.md")
    args = p.parse_args(argv)

    slice_us, kernel_us = bench_ours(args.bars, args.symbols, args.repeats)
    lone_us, lone_kernel_us = bench_ours(args.bars, 1, args.repeats)
    talipp_us = bench_talipp(args.talipp_bars, args.repeats)
    stream_us = bench_talib_stream(args.bars, args.repeats)
    recompute_us = bench_talib_recompute(min(args.bars, 1000), args.repeats)
    batch_us = bench_talib_batch(max(args.bars, 20_000), args.repeats)
    first_inner, first_outer = bench_first_slice(args.repeats)
    build = bench_build(args.build_symbols, args.build_bars)

    rows = [
        ("ours: 89 features, 100-symbol slice (FeatureCalculator.update)", slice_us,
         "µs / symbol-bar", "≤ 1"),
        ("ours: 89 features, 100-symbol slice, bare kernel", kernel_us, "µs / symbol-bar", ""),
        ("ours: 89 features, lone symbol (FeatureCalculator.update)", lone_us, "µs / bar", "≤ 5"),
        ("ours: 89 features, lone symbol, bare kernel", lone_kernel_us, "µs / bar", ""),
        ("talipp 2.x, 39 of the 40-series subset (no MFI in talipp)", talipp_us, "µs / bar", ""),
        ("TA-Lib talib.stream objects (incremental), 40 series", stream_us, "µs / bar", ""),
        ("TA-Lib recompute on a 400-bar window each bar, 40 series", recompute_us, "µs / bar", ""),
        ("TA-Lib batch over whole arrays, 40 series", batch_us, "µs / bar", ""),
    ]  # fmt: skip
    lines = [
        "# Feature calculator benchmark",
        "",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- software: {versions()}",
        f"- command: `python bench/bench_features.py {' '.join(argv or sys.argv[1:])}`".rstrip(),
        f"- streaming runs: {args.bars} bars x {args.symbols} symbols (random walks), best of "
        f"{args.repeats}; talipp {args.talipp_bars} bars",
        "",
        "| what | value | unit | target |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [f"| {name} | {value:.3f} | {unit} | {target} |" for name, value, unit, target in rows]
    lines += [
        f"| import → first 100-symbol slice (fresh process, numba cache warm) | {first_inner:.3f}"
        " | s | ≤ 2 |",
        f"| same, whole child process incl. interpreter start | {first_outer:.3f} | s | |",
        f"| batch build {args.build_symbols} x {args.build_bars:,} bars = {build['bars']:,.0f} "
        f"bars | {build['bars'] / build['seconds']:,.0f} | bars/s | |",
        f"| batch build peak RSS (child process) | {build['rss_mb']:,.0f} | MiB | |",
        f"| batch build file size | {build['file_mb']:,.1f} | MiB | |",
        "",
        "Ratios (same run; the anchors compute 40 series, ours 89 features):",
        "",
        f"- talipp / ours (100-symbol slice): **{talipp_us / slice_us:,.0f}x** (target ≥ 100x)",
        f"- talipp / ours (lone symbol): {talipp_us / lone_us:,.0f}x",
        f"- TA-Lib stream objects / ours (100-symbol slice): {stream_us / slice_us:,.1f}x",
        f"- TA-Lib window recompute / ours (100-symbol slice): {recompute_us / slice_us:,.0f}x",
        f"- TA-Lib batch / ours (100-symbol slice): {batch_us / slice_us:,.2f}x",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
