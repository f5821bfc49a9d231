"""Streaming one slice at a time equals the batch build bit for bit, whatever the universe does
(symbols joining late, bars missing), and session-scoped features restart at the open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from features_testdata import edge_case_bars, nse_5min

from config.sessions import NSE
from engine.features.calculator import (
    FeatureCalculator,
    FeatureInputError,
    compute_history,
    session_open_flags,
    ts_ns_of,
)
from engine.features.spec import COLUMN, FEATURES, MAX_WARMUP, N_FEATURES


def universe_bars() -> pd.DataFrame:
    """Three symbols on one clock: one joins ~4 days late, one misses 10% of its bars."""
    nifty = nse_5min("NIFTY 50").iloc[:2500]
    bank = nse_5min("NIFTY BANK").iloc[300:2500]  # joins late
    rng = np.random.default_rng(3)
    edge = edge_case_bars(2500)
    edge["ts"] = nifty["ts"].to_numpy()
    edge = edge[rng.random(len(edge)) > 0.1]  # gaps
    return pd.concat([nifty, bank, edge], ignore_index=True)


def stream(frame: pd.DataFrame, calc: FeatureCalculator) -> tuple[pd.DataFrame, np.ndarray]:
    """Feed ``frame`` slice by slice (one timestamp, all symbols present at it)."""
    bars = frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    codes, _ = pd.factorize(bars["symbol"], sort=True)
    codes = codes.astype(np.int64)
    ts_ns = ts_ns_of(bars["ts"])
    bars["session_open"] = session_open_flags(codes, ts_ns)
    bars["sid"] = codes
    bars["ts_ns"] = ts_ns
    values = np.full((len(bars), N_FEATURES), -1.0, dtype=np.float32)
    ready = np.zeros(len(bars), dtype=bool)
    for ts, rows in bars.groupby("ts_ns", sort=True).indices.items():
        sl = bars.iloc[rows]
        out, rdy = calc.update(
            sl["sid"].to_numpy(), int(ts), *(sl[k].to_numpy() for k in
            ("open", "high", "low", "close", "volume")), sl["session_open"].to_numpy(),
        )  # fmt: skip
        values[rows] = out
        ready[rows] = rdy
    return bars, values, ready  # type: ignore[return-value]


@pytest.fixture(scope="module")
def streamed():  # type: ignore[no-untyped-def]
    frame = universe_bars()
    return frame, *stream(frame, FeatureCalculator(capacity=1, session=NSE))  # capacity must grow


def test_streaming_equals_batch_bit_for_bit(streamed) -> None:  # type: ignore[no-untyped-def]
    frame, bars, values, _ready = streamed
    batch = compute_history(frame, session=NSE)
    assert (batch["symbol"].to_numpy() == bars["symbol"].to_numpy()).all()
    expected = batch[[f.name for f in FEATURES]].to_numpy()
    assert expected.dtype == np.float32
    assert np.array_equal(values.view(np.uint32), expected.view(np.uint32))


def test_each_symbol_is_independent_of_the_others(streamed) -> None:  # type: ignore[no-untyped-def]
    frame, bars, values, _ready = streamed
    for symbol, alone in frame.groupby("symbol"):
        solo = compute_history(alone, session=NSE)[[f.name for f in FEATURES]].to_numpy()
        mine = values[(bars["symbol"] == symbol).to_numpy()]
        assert np.array_equal(mine.view(np.uint32), solo.view(np.uint32)), symbol


def test_ready_means_every_feature_past_warm_up(streamed) -> None:  # type: ignore[no-untyped-def]
    _frame, bars, values, ready = streamed
    nth = bars.groupby("symbol").cumcount().to_numpy()
    assert (ready == (nth >= MAX_WARMUP)).all()
    assert (ready == ~np.isnan(values).any(axis=1)).all()
    for j, f in enumerate(FEATURES):  # NaN exactly during the feature's own warm-up
        assert (np.isnan(values[:, j]) == (nth < f.warmup)).all(), f.name
    assert np.isfinite(values[ready]).all()


def test_session_features_restart_at_the_open(streamed) -> None:  # type: ignore[no-untyped-def]
    _frame, bars, values, _ready = streamed
    opens = bars["session_open"].to_numpy()
    since = values[:, COLUMN["bars_since_open"]]
    assert (since[opens] == 0).all()
    day = bars.groupby(["symbol", bars["ts"].dt.date]).cumcount().to_numpy()
    assert (since == day).all()
    tp = ((bars["high"] + bars["low"] + bars["close"]) / 3.0).to_numpy()
    vwap = values[:, COLUMN["vwap_session"]]
    assert np.allclose(vwap[opens], tp[opens], rtol=1e-6)
    high = bars.groupby(["symbol", bars["ts"].dt.date])["high"].cummax().to_numpy()
    dist = values[:, COLUMN["dist_session_high"]]
    assert np.allclose(dist, bars["close"].to_numpy() / high - 1.0, rtol=1e-5, atol=1e-7)


def test_absent_symbol_is_not_advanced() -> None:
    calc = FeatureCalculator(session=NSE)
    bars = edge_case_bars(30)
    args = [bars[k].to_numpy()[:1] for k in ("open", "high", "low", "close", "volume")]
    ts = ts_ns_of(bars["ts"])
    calc.update(np.array([0]), int(ts[0]), *args, np.array([True]))
    calc.update(np.array([1]), int(ts[1]), *args, np.array([True]))
    calc.update(np.array([1]), int(ts[2]), *args, np.array([False]))
    assert calc.bars_seen(0) == 1 and calc.bars_seen(1) == 2 and calc.bars_seen(5) == 0


def _one(calc: FeatureCalculator, sid: list[int], ts: int, **bad: float) -> None:
    k = len(sid)
    fields = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 10.0}
    fields.update(bad)
    arrays = [np.full(k, fields[n]) for n in ("open", "high", "low", "close", "volume")]
    calc.update(np.array(sid), ts, *arrays, np.ones(k, dtype=bool))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"close": float("nan")}, "prices must be finite and > 0"),
        ({"low": 0.0}, "prices must be finite and > 0"),
        ({"high": float("inf")}, "prices must be finite and > 0"),
        ({"volume": -1.0}, "volume must be finite and >= 0"),
        ({"volume": float("nan")}, "volume must be finite and >= 0"),
    ],
)
def test_bad_bar_is_refused_and_state_kept(bad: dict, message: str) -> None:
    calc = FeatureCalculator(session=NSE)
    _one(calc, [0, 1], 1_000)
    with pytest.raises(FeatureInputError, match=message) as info:
        _one(calc, [0, 1], 2_000, **bad)
    assert "row 0 (sid 0" in str(info.value)
    assert calc.bars_seen(0) == 1 and calc.bars_seen(1) == 1
    _one(calc, [0, 1], 2_000)  # the same timestamp is still acceptable afterwards
    assert calc.bars_seen(0) == 2


def test_time_must_advance_and_duplicates_are_refused() -> None:
    calc = FeatureCalculator(session=NSE)
    _one(calc, [0, 1], 1_000)
    with pytest.raises(FeatureInputError, match="time does not advance"):
        _one(calc, [0, 1], 1_000)
    with pytest.raises(FeatureInputError, match=r"row 2 \(sid 0"):
        _one(calc, [0, 1, 0], 2_000)  # sid 0 twice in one slice
    assert calc.bars_seen(0) == 1 and calc.bars_seen(1) == 1
    _one(calc, [1, 0], 2_000)
    assert calc.bars_seen(0) == 2 and calc.bars_seen(1) == 2
    with pytest.raises(FeatureInputError, match="symbol id must be >= 0"):
        _one(calc, [-1], 3_000)


def test_history_errors_name_symbol_and_row() -> None:
    bars = edge_case_bars(50)
    bars.loc[17, "close"] = -3.0
    with pytest.raises(FeatureInputError, match=r"symbol 'EDGE', frame index 17: .*close=-3\.0"):
        compute_history(bars, session=NSE)
    with pytest.raises(FeatureInputError, match="lacks column"):
        compute_history(bars.drop(columns="volume"), session=NSE)


def test_reset_restarts_a_symbol_from_bar_zero() -> None:
    bars = edge_case_bars(300)
    fresh = compute_history(bars.iloc[100:], session=NSE)[[f.name for f in FEATURES]].to_numpy()
    calc = FeatureCalculator(session=NSE)
    cols = [bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]
    ts = ts_ns_of(bars["ts"])
    sess = session_open_flags(np.zeros(len(bars), dtype=np.int64), ts)
    calc.update_rows(np.zeros(100, np.int64), ts[:100], *(c[:100] for c in cols), sess[:100])
    calc.reset(0)
    out, _ = calc.update_rows(
        np.zeros(200, np.int64), ts[100:], *(c[100:] for c in cols), sess[100:]
    )
    assert np.array_equal(out.view(np.uint32), fresh.view(np.uint32))


def test_other_dtypes_and_read_only_arrays_are_converted_not_recompiled() -> None:
    bars = edge_case_bars(260)
    ts = ts_ns_of(bars["ts"])
    cols = {k: bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume")}
    plain, odd = FeatureCalculator(session=NSE), FeatureCalculator(session=NSE)
    for i in range(len(bars)):
        row = [cols[k][i : i + 1].copy() for k in cols]
        a, ra = plain.update(np.array([0]), int(ts[i]), *row, np.array([i % 75 == 0]))
        ro = [x.copy() for x in row]
        for x in ro:
            x.flags.writeable = False
        ro[4] = ro[4].astype(np.int64)  # e.g. Kite volumes
        b, rb = odd.update([0], np.int64(ts[i]), *ro, [i % 75 == 0])  # type: ignore[arg-type]
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)) and (ra == rb).all()
