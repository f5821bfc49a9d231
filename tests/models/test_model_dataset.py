"""Windows, split and scaler: no window spans symbols/sessions, no leakage across the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.dataset import (
    FeatureTable,
    WindowSet,
    covered_rows,
    subsample,
    time_split,
    window_ends,
)
from models.errors import DatasetError
from models.labels import UNLABELED, LabelConfig, make_labels
from models.scaler import Scaler, fit_scaler
from models.synthetic import synthetic_table

WINDOW = 20


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return synthetic_table(n_symbols=3, days=4, bars_per_day=30, n_features=5, warmup=4)


def test_windows_never_span_symbols_sessions_or_warmup(table: FeatureTable) -> None:
    for cross in (True, False):
        ends = window_ends(table, WINDOW, cross_sessions=cross)
        assert len(ends) > 0
        first = ends - (WINDOW - 1)
        assert (table.symbol_codes[first] == table.symbol_codes[ends]).all()
        days = table.session_ids
        if not cross:
            assert (days[first] == days[ends]).all()
        for e in ends:
            assert table.ready[e - WINDOW + 1 : e + 1].all()
    within = window_ends(table, WINDOW, cross_sessions=False)
    across = window_ends(table, WINDOW, cross_sessions=True)
    # 30-bar sessions: 11 windows per session, 7 in the first (4 warm-up rows)
    assert len(within) == 3 * (3 * (30 - WINDOW + 1) + (30 - 4 - WINDOW + 1))
    assert len(across) == 3 * (4 * 30 - 4 - WINDOW + 1)
    assert set(within) <= set(across)


def test_every_valid_window_is_found(table: FeatureTable) -> None:
    """Brute force over all rows agrees with the vectorised search."""
    ends = set(window_ends(table, WINDOW, cross_sessions=False).tolist())
    days = table.session_ids
    for e in range(len(table)):
        lo = e - WINDOW + 1
        ok = (
            lo >= 0
            and len(set(table.symbol_codes[lo : e + 1])) == 1
            and len(set(days[lo : e + 1])) == 1
            and table.ready[lo : e + 1].all()
        )
        assert (e in ends) == ok, e


def test_gather_equals_direct_slices_and_scales(table: FeatureTable) -> None:
    ends = window_ends(table, WINDOW)
    mean = np.arange(5, dtype=np.float64)
    scale = np.arange(1, 6, dtype=np.float64)
    ws = WindowSet(table, ends, WINDOW, mean=mean, scale=scale)
    positions = np.array([0, 7, len(ends) - 1])
    x = ws.gather(positions)
    assert x.shape == (3, WINDOW, 5) and x.dtype == np.float32
    for i, p in enumerate(positions):
        e = ends[p]
        direct = (table.values[e - WINDOW + 1 : e + 1] - mean) / scale
        np.testing.assert_allclose(x[i], direct, rtol=1e-6, atol=1e-6)
    # gathering copies: the table is untouched
    assert np.isfinite(table.values[table.ready]).all()


def test_future_rows_do_not_change_earlier_windows_or_labels() -> None:
    base = synthetic_table(n_symbols=1, days=3, bars_per_day=40, n_features=4, seed=3)
    cfg = LabelConfig(horizon=4, vol_window=20)
    k = 70  # perturb every row from k on
    values = base.values.copy()
    close = base.close.copy()
    values[k:] += 100.0
    close[k:] *= 1.3
    moved = FeatureTable(
        base.ts_ns,
        base.symbol_codes,
        base.symbols,
        values,
        base.ready,
        base.spec_hash,
        base.feature_names,
        close,
    )
    ends = window_ends(base, WINDOW)
    before = ends[ends < k]
    assert len(before) > 10
    a = WindowSet(base, before, WINDOW).gather(np.arange(len(before)))
    b = WindowSet(moved, before, WINDOW).gather(np.arange(len(before)))
    np.testing.assert_array_equal(a, b)
    la = make_labels(base.close, base.symbol_codes, base.session_ids, cfg)
    lb = make_labels(close, base.symbol_codes, base.session_ids, cfg)
    settled = np.arange(len(base)) + cfg.horizon < k
    np.testing.assert_array_equal(la[settled], lb[settled])


def test_time_split_is_by_timestamp_with_purge_and_gap(table: FeatureTable) -> None:
    """Three parts in time order; at each cut the labels before it stop short of it and the
    windows after it start gap_bars rows in, the same instant for every symbol."""
    cfg = LabelConfig(horizon=3, mode="fixed", threshold=0.0)
    labels = make_labels(table.close, table.symbol_codes, table.session_ids, cfg)
    ends = window_ends(table, WINDOW, labels=labels)
    assert (labels[ends] != UNLABELED).all()
    split = time_split(table, ends, horizon=3, train_frac=0.6, val_frac=0.2, gap_bars=5)
    ts = table.ts_ns
    assert ts[split.train].max() < split.cut_ts_ns <= ts[split.val].min()
    assert ts[split.val].max() < split.test_cut_ts_ns <= ts[split.test].min()
    assert split.gap_bars == 5
    assert not set(split.train) & set(split.val) and not set(split.val) & set(split.test)
    for code in range(len(table.symbols)):
        mine = [part[table.symbol_codes[part] == code] for part in (split.train, split.val)]
        tr, va = mine
        te = split.test[table.symbol_codes[split.test] == code]
        for before, after, cut in ((tr, va, split.cut_ts_ns), (va, te, split.test_cut_ts_ns)):
            # the last label's bar (end + horizon) of the earlier part lies before the cut…
            assert ts[before.max() + 3] < cut
            # …and the later part starts gap_bars rows after the symbol's first row at the cut
            first_after = np.flatnonzero((table.symbol_codes == code) & (ts >= cut))[0]
            assert after.min() >= first_after + 5
            assert after.min() - (before.max() + 3) >= 5
    # the cuts are the same time for every symbol (not a share of each symbol's rows)
    for part in (split.val, split.test):
        assert len({int(ts[part[table.symbol_codes[part] == c].min()]) for c in range(3)}) == 1
    described = split.describe()
    assert described["test_windows"] == len(split.test) > 0
    assert described["test_cut"].startswith(str(np.datetime64(split.test_cut_ts_ns, "ns"))[:10])


def test_time_split_needs_room_for_a_test_period(table: FeatureTable) -> None:
    ends = window_ends(table, WINDOW)
    with pytest.raises(DatasetError, match="leave a test period"):
        time_split(table, ends, horizon=3, train_frac=0.8, val_frac=0.2)
    with pytest.raises(DatasetError, match="must be > 0"):
        time_split(table, ends, horizon=3, train_frac=0.8, val_frac=0.0)


def test_gap_is_never_smaller_than_the_horizon(table: FeatureTable) -> None:
    ends = window_ends(table, WINDOW)
    assert time_split(table, ends, horizon=6, gap_bars=2).gap_bars == 6


def test_scaler_is_fitted_on_training_rows_only(table: FeatureTable) -> None:
    ends = window_ends(table, WINDOW)
    split = time_split(table, ends, horizon=3)
    rows = covered_rows(len(table), split.train, WINDOW)
    scaler = fit_scaler(table.values, rows, chunk=37)  # odd chunks exercise the merge
    train_rows = table.values[rows].astype(np.float64)
    np.testing.assert_allclose(scaler.mean, train_rows.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(scaler.scale, train_rows.std(axis=0), rtol=1e-9)
    # rows only validation windows use do not move it
    val_only = covered_rows(len(table), split.val, WINDOW) & ~rows
    assert val_only.any()
    changed = table.values.copy()
    changed[val_only] *= 50
    again = fit_scaler(changed, rows)
    np.testing.assert_allclose(again.mean, scaler.mean, rtol=1e-12)


def test_scaler_matches_sklearn_and_saves_without_pickle(tmp_path) -> None:
    sklearn = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(500, 4)).astype(np.float32)
    x[:, 3] = 1.0  # constant column: scale 1, as sklearn
    ours = fit_scaler(x, np.ones(500, dtype=bool))
    ref = sklearn.StandardScaler().fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.mean, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.scale, ref.scale_, rtol=1e-10)
    for name in ("s.json", "s.npz"):
        ours.save(tmp_path / name)
        back = Scaler.load(tmp_path / name)
        np.testing.assert_array_equal(back.mean, ours.mean)
        np.testing.assert_array_equal(back.scale, ours.scale)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json"):
        Scaler.load(tmp_path / "bad.json")


def test_subsample_keeps_spread(table: FeatureTable) -> None:
    ends = window_ends(table, WINDOW)
    picked = subsample(ends, 10)
    assert len(picked) == 10 and picked[0] == ends[0] and picked[-1] == ends[-1]
    assert subsample(ends, None) is ends


def test_table_refuses_bad_layouts(table: FeatureTable) -> None:
    values = table.values.copy()
    row = int(np.flatnonzero(table.ready)[3])
    values[row, 2] = np.nan
    with pytest.raises(DatasetError, match=rf"row {row} .*ready.*'f2'"):
        FeatureTable(
            table.ts_ns,
            table.symbol_codes,
            table.symbols,
            values,
            table.ready,
            "x",
            table.feature_names,
        )
    ts = table.ts_ns.copy()
    ts[5] = ts[4]
    with pytest.raises(DatasetError, match=r"row 5 .*order or duplicated"):
        FeatureTable(
            ts,
            table.symbol_codes,
            table.symbols,
            table.values,
            table.ready,
            "x",
            table.feature_names,
        )


def test_from_frame_sorts_and_derives_ready() -> None:
    ts = pd.date_range("2021-01-04 09:15", periods=4, freq="5min", tz="Asia/Kolkata")
    frame = pd.DataFrame(
        {
            "ts": list(ts) * 2,
            "symbol": ["B"] * 4 + ["A"] * 4,
            "f0": [np.nan, 1, 2, 3, 4, 5, 6, 7],
            "close": np.arange(8.0) + 100,
        }
    ).sample(frac=1.0, random_state=0)
    table = FeatureTable.from_frame(frame, ["f0"], "h")
    assert table.symbols == ("A", "B")
    assert table.values[:, 0].tolist()[:4] == [4, 5, 6, 7]
    assert table.ready.tolist() == [True] * 4 + [False] + [True] * 3
    assert table.close is not None and table.close[0] == 104.0
    assert (
        table.fingerprint()
        != FeatureTable.from_frame(frame.assign(f0=frame["f0"] + 1), ["f0"], "h").fingerprint()
    )
