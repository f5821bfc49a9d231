"""Feature files: written symbol by symbol through the same kernels, stamped with the spec, and
refused on read when the spec differs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from features_testdata import NSE_DIR, edge_case_bars, nse_5min

from app.cli import main
from config.sessions import NSE
from engine.features.build import (
    META_HASH,
    build_from_frame,
    read_features,
    split_by_symbol,
)
from engine.features.calculator import compute_history
from engine.features.spec import FEATURE_NAMES, SPEC_HASH, SPEC_VERSION, SpecMismatchError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    parts = [nse_5min("NIFTY BANK").iloc[:900], edge_case_bars(700), nse_5min("NIFTY 50")[:800]]
    return pd.concat(parts, ignore_index=True)  # deliberately not sorted by symbol


def test_build_round_trip_equals_compute_history(frame: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "features.parquet"
    report = build_from_frame(frame, out, session=NSE)
    assert report.bars == len(frame) and report.symbols == 3
    assert report.ready_bars == len(frame) - 3 * 199
    assert "bars/s" in str(report)
    got = read_features(out)
    assert list(got.columns) == ["ts", "symbol", *FEATURE_NAMES]
    assert all(got[n].dtype == np.float32 for n in FEATURE_NAMES)
    expected = compute_history(frame, session=NSE)
    assert (got["symbol"].to_numpy() == expected["symbol"].to_numpy()).all()
    assert (got["ts"] == expected["ts"]).all()
    a = got[list(FEATURE_NAMES)].to_numpy()
    b = expected[list(FEATURE_NAMES)].to_numpy()
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    meta = pq.read_schema(out).metadata
    assert meta[META_HASH].decode() == SPEC_HASH
    assert meta[b"feature_spec_version"].decode() == SPEC_VERSION
    assert pq.ParquetFile(out).num_row_groups == 3  # one symbol at a time
    assert not list(out.parent.glob("*.partial"))


def test_split_by_symbol_yields_sorted_single_symbol_groups(frame: pd.DataFrame) -> None:
    groups = list(split_by_symbol(frame))
    assert [g["symbol"].iloc[0] for g in groups] == sorted(frame["symbol"].unique())
    assert all(g["symbol"].nunique() == 1 for g in groups)
    assert sum(len(g) for g in groups) == len(frame)


def _rewrite_with(path: Path, metadata: dict[bytes, bytes] | None) -> None:
    table = pq.read_table(path)
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def test_read_refuses_another_spec(frame: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    build_from_frame(frame.iloc[:300], out, session=NSE)
    _rewrite_with(out, {META_HASH: b"0123abcd", b"feature_spec_version": b"0.9"})
    with pytest.raises(SpecMismatchError) as info:
        read_features(out)
    message = str(info.value)
    assert "0123abcd" in message and SPEC_HASH in message and str(out) in message
    _rewrite_with(out, None)
    with pytest.raises(SpecMismatchError, match="none recorded"):
        read_features(out)


def test_read_refuses_a_non_parquet_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ValueError, match="not a readable feature file"):
        read_features(bad)


def test_failed_build_leaves_no_file(tmp_path: Path) -> None:
    bars = edge_case_bars(300)
    bars.loc[250, "volume"] = -5.0
    out = tmp_path / "f.parquet"
    with pytest.raises(ValueError, match="volume must be finite"):
        build_from_frame(bars, out, session=NSE)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_build_from_nse_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nifty.parquet"
    rc = main(["features", "build", "--data", str(NSE_DIR / "NIFTY50_1min_2021.parquet"),
               "--interval", "5minute", "--out", str(out)])  # fmt: skip
    assert rc == 0
    got = read_features(out, columns=["ts", "symbol", "rsi_14"])
    assert len(got) > 18_000 and got["symbol"].nunique() == 1
    minutes = got["ts"].dt.hour * 60 + got["ts"].dt.minute
    assert ((minutes - 555) % 5 == 0).all() and minutes.between(555, 925).all()
    assert "bars/s" in capsys.readouterr().out


def test_cli_build_reports_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["features", "build", "--data", str(tmp_path / "nope.parquet"),
               "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    assert rc == 2
    assert "error:" in capsys.readouterr().err


def test_schema_is_float32_with_tz_timestamps(frame: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    build_from_frame(frame.iloc[:250], out, session=NSE)
    schema = pq.read_schema(out)
    assert schema.field("ts").type == pa.timestamp("ns", tz="Asia/Kolkata")
    assert {schema.field(n).type for n in FEATURE_NAMES} == {pa.float32()}
