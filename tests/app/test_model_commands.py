"""`trader train` end to end on the real NSE bars (reduced config), from bars and from a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.commands.models import register
from app.errors import UserError
from config.sessions import NSE
from models.checkpoint import load_bundle
from models.feature_source import closes_from_log_returns

spec = pytest.importorskip("engine.features.spec")

SMALL = [
    "--epochs",
    "1",
    "--max-windows",
    "300",
    "--window",
    "20",
    "--hidden-size",
    "16",
    "--threads",
    "1",
    "--no-progress",
    "--device",
    "cpu",
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trader")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_train_from_bars(nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = parser().parse_args(["train", "--data", str(nifty_path), "--out", str(tmp_path), *SMALL])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "labels: SELL" in out
    # validation and test reported apart, each beside both baselines on the same windows
    rows = [line.split() for line in out.splitlines() if line.startswith(("validation", "test "))]
    table = [row for row in rows if row[1] != "labels:"]
    assert [(row[0], row[1]) for row in table] == [
        ("validation", "model"),
        ("validation", "majority"),
        ("validation", "logistic"),
        ("test", "model"),
        ("test", "majority"),
        ("test", "logistic"),
    ]
    assert "test accuracy" in out and "data seen: measured: NIFTY 50, 5-minute bars" in out
    bundle = load_bundle(tmp_path / "model.ckpt")  # checked against the running spec
    assert bundle.spec_hash == spec.SPEC_HASH
    assert bundle.feature_names == spec.FEATURE_NAMES
    assert bundle.interval_minutes == 5 and bundle.config.n_features == 89
    setup = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[0])
    assert setup["symbols"] == 1 and setup["split"]["train_windows"] > 150
    assert setup["split"]["test_windows"] > 30
    assert bundle.provenance.symbols == ("NIFTY 50",) and bundle.provenance.interval_minutes == 5
    assert list(tmp_path.glob("intraday-epoch=00-val_loss=*-val_accuracy=*.ckpt"))
    # a second training into the same directory would mix two runs' checkpoints: refused
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    again = parser().parse_args(
        ["train", "--data", str(nifty_path), "--out", str(tmp_path), *SMALL]
    )
    with pytest.raises(UserError, match=r"already holds files \(intraday-epoch=00"):
        again.func(again)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before


def test_train_from_a_features_file(nifty_path: Path, tmp_path: Path) -> None:
    build = pytest.importorskip("engine.features.build")
    from engine.data.loader import load_bars

    bars = load_bars([nifty_path], "5minute", session=NSE).frame
    bars = bars[bars["ts"] < bars["ts"].iloc[0] + np.timedelta64(30, "D")]
    path = tmp_path / "features.parquet"
    build.build_from_frame(bars, path, session=NSE)
    args = parser().parse_args(
        ["train", "--features", str(path), "--out", str(tmp_path / "m"), *SMALL]
    )
    assert args.func(args) == 0
    assert torch.load(tmp_path / "m" / "model.ckpt", weights_only=True)["data_config"] == {
        "cross_sessions": True,
        "interval_minutes": 5,
    }


def test_closes_from_log_returns_restart_per_symbol() -> None:
    close = np.array([100.0, 101.0, 99.0, 50.0, 55.0, 60.5])
    codes = np.array([0, 0, 0, 1, 1, 1])
    logret = np.full(6, np.nan)
    logret[1:] = 100 * np.log(close[1:] / close[:-1])
    logret[3] = np.nan  # a symbol's first bar has no return
    rel = closes_from_log_returns(logret, codes)
    np.testing.assert_allclose(rel, [1.0, 1.01, 0.99, 1.0, 1.1, 1.21], rtol=1e-12)


def test_train_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--out", str(tmp_path)])
