"""Session hours have one source, the settings: a session that opens at 10:00 moves the loader,
the resampling buckets, the features, the metrics and the live bar feed together with the risk
gates; NSE's hours are written down once (``config.sessions``). With the defaults nothing moves:
the golden run and the feature parity tests hold that bit for bit."""

from __future__ import annotations

import json
import math
from datetime import datetime, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.cli import main
from app.runners.backtest import run_backtest
from brokers.kite.bar_aggregator import BarAggregator
from config.sessions import IST, NSE, SessionTimes
from config.settings import SessionSettings, SettingsError, load_settings
from engine.data.loader import load_bars
from engine.data.synthetic import SyntheticMarket
from engine.events import FeatureSlice
from engine.features.build import read_features
from engine.features.calculator import compute_history
from engine.features.spec import COLUMN
from engine.metrics import compute_metrics
from strategies.base import Strategy, StrategyContext
from strategies.sma_cross import SmaCross, SmaCrossParams

TEN = SessionTimes(open=time(10, 0))  # 10:00–15:30 IST, square-off 15:20
DAY = "2024-01-02"
PRE_TEN_MINUTES = 45  # one-minute bars 09:15 … 09:59


def minute_bars_csv(tmp_path: Path) -> Path:
    """One symbol, one NSE day of one-minute bars (09:15–15:29), a gentle uptrend."""
    ts = pd.date_range(f"{DAY} 09:15", f"{DAY} 15:29", freq="1min")
    close = 100.0 + 0.05 * np.arange(len(ts))
    frame = pd.DataFrame(
        {
            "ts": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "open": close,
            "high": close + 0.1,
            "low": close - 0.1,
            "close": close,
            "volume": 10.0,
        }
    )
    path = tmp_path / "X.csv"
    frame.to_csv(path, index=False)
    return path


def minutes_of_day(ts: pd.Series) -> np.ndarray:
    return (ts.dt.hour * 60 + ts.dt.minute).to_numpy()


def at(ts: pd.Series, hhmm: str) -> np.ndarray:
    return (ts == pd.Timestamp(f"{DAY} {hhmm}", tz=IST)).to_numpy()


# ---- one place for the defaults, validated hours ----------------------------------------------


def test_the_settings_defaults_are_config_sessions_nse(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SessionSettings().times == NSE == SessionTimes()
    monkeypatch.setenv("TRADER_SESSION__OPEN", "10:00")
    assert load_settings().session.times == TEN


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"open": "15:30"}, "must be before its close"),
        ({"open": "10:00:30"}, "whole minute"),
    ],
)
def test_impossible_hours_are_refused(session: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(session=session)


def test_an_interval_longer_than_the_session_is_refused() -> None:
    load_settings(interval="330minute", session={"open": "10:00"})
    with pytest.raises(SettingsError, match=r"one session \(330 minutes\)"):
        load_settings(interval="345minute", session={"open": "10:00"})


# ---- loader and resampling -----------------------------------------------------------------


def test_the_loader_keeps_the_sessions_bars_and_buckets_from_its_open(tmp_path: Path) -> None:
    path = minute_bars_csv(tmp_path)
    ten = load_bars([path], "30minute", session=TEN)
    minutes = minutes_of_day(ten.frame["ts"])
    assert minutes[0] == 10 * 60 and ((minutes - 10 * 60) % 30 == 0).all()
    assert ten.quality.dropped["outside_session"] == PRE_TEN_MINUTES
    assert ten.session == TEN
    first = ten.frame.iloc[0]  # 10:00–10:29 from the one-minute bars 45 … 74
    assert (first["open"], first["volume"]) == (100.0 + 0.05 * 45, 300.0)

    nse = load_bars([path], "30minute", session=NSE)  # the same file, NSE's grid
    assert minutes_of_day(nse.frame["ts"])[:3].tolist() == [555, 585, 615]
    assert nse.quality.dropped["outside_session"] == 0
    assert nse.fingerprint != ten.fingerprint  # other hours keep other bars


def test_the_live_feed_cuts_ticks_into_the_same_grid() -> None:
    aggregator = BarAggregator(30, grace_s=0, session=TEN)
    day = datetime(2024, 1, 2, tzinfo=IST)

    def tick(hh: int, mm: int, price: float, cumulative: int) -> list:
        ts = day.replace(hour=hh, minute=mm)
        return aggregator.add("X", int(ts.timestamp()) * 1_000_000_000, price, cumulative)

    assert tick(9, 50, 1.0, 10) == []  # before the open: no bar data
    tick(10, 5, 2.0, 20)
    (bar,) = tick(10, 31, 3.0, 30)  # closes the 10:00 bar
    assert bar.ts == day.replace(hour=10) and bar.bars["X"][0] == 2.0
    assert aggregator.stats.out_of_session == 1


# ---- features ---------------------------------------------------------------------------------


def test_the_features_measure_time_of_session_from_the_open(tmp_path: Path) -> None:
    bars = load_bars([minute_bars_csv(tmp_path)], "5minute", session=TEN)
    features = compute_history(bars.frame, session=TEN)
    ts = features["ts"]
    opening = features[at(ts, "10:00")].iloc[0]
    assert opening["bars_since_open"] == 0
    assert opening["mos_cos"] == 1.0 and opening["mos_sin"] == 0.0
    halfway = features[at(ts, "12:45")].iloc[0]  # 165 of the session's 330 minutes
    assert halfway["mos_cos"] == pytest.approx(-1.0)

    under_nse = compute_history(bars.frame, session=NSE)  # same bars, NSE's clock
    assert under_nse[at(ts, "10:00")].iloc[0]["mos_cos"] == pytest.approx(
        math.cos(2 * math.pi * 45 / 375), abs=1e-6
    )


class FeatureTap(Strategy):
    """Records every feature slice the pipeline hands it; never trades."""

    name = "feature_tap"
    wants_features = True

    def __init__(self) -> None:
        super().__init__()
        self.slices: list[FeatureSlice] = []

    def on_features(self, features: FeatureSlice, ctx: StrategyContext) -> None:
        self.slices.append(features)


async def test_the_pipelines_features_follow_the_settings(tmp_path: Path) -> None:
    bars = load_bars([minute_bars_csv(tmp_path)], "5minute", session=TEN)
    tap = FeatureTap()
    await run_backtest(bars, tap, load_settings(session={"open": "10:00"}))
    assert tap.slices[0].values[0, COLUMN["mos_cos"]] == 1.0


# ---- metrics --------------------------------------------------------------------------------


def test_bar_sharpe_is_annualised_by_the_sessions_bar_count() -> None:
    rng = np.random.default_rng(4)
    ts = pd.date_range(f"{DAY} 10:00", periods=200, freq="5min", tz=IST).as_unit("ns")
    ts_ns = ts.asi8
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0002, 0.001, ts_ns.size))
    args = (ts_ns, equity, np.zeros(ts_ns.size), [], 100_000.0, 5, 0.0, 0.0)
    ten = compute_metrics(*args, session=TEN)["sharpe_bar"]
    nse = compute_metrics(*args, session=NSE)["sharpe_bar"]
    assert ten == pytest.approx(nse * math.sqrt(66 / 75))  # ceil(330/5) vs ceil(375/5) bars


async def test_a_runs_metrics_use_its_settings_session() -> None:
    bars = SyntheticMarket(symbols=2, days=3, seed=5).bars("5minute", TEN)
    settings = load_settings(costs={"model": "none"}, session={"open": "10:00"})
    result = await run_backtest(bars, SmaCross(SmaCrossParams(3, 8, 1)), settings)
    pf = result.pipeline.portfolio
    curve = (
        np.asarray(pf.curve_ts, dtype=np.int64), np.asarray(pf.curve_equity),
        np.asarray(pf.curve_gross), pf.trades, pf.initial_capital, 5, pf.turnover,
        pf.total_costs,
    )  # fmt: skip
    assert result.metrics["sharpe_bar"] != 0.0
    slippage = pf.total_slippage
    assert result.metrics == compute_metrics(*curve, session=TEN, total_slippage=slippage)
    assert result.metrics["sharpe_bar"] != compute_metrics(*curve, session=NSE)["sharpe_bar"]


# ---- the CLI hands the environment's hours down ---------------------------------------------


def test_the_cli_takes_the_session_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADER_SESSION__OPEN", "10:00")
    csv = minute_bars_csv(tmp_path)
    out = tmp_path / "run.json"
    rc = main(["backtest", "--data", str(csv), "--interval", "30minute", "--no-db",
               "--no-progress", "--json", str(out)])  # fmt: skip
    assert rc == 0
    assert json.loads(out.read_text())["data_quality"]["dropped"]["outside_session"] == 45

    features = tmp_path / "features.parquet"
    rc = main(["features", "build", "--data", str(csv), "--interval", "30minute",
               "--out", str(features)])  # fmt: skip
    assert rc == 0
    first = read_features(features).iloc[0]
    assert first["ts"] == pd.Timestamp(f"{DAY} 10:00", tz=IST) and first["mos_cos"] == 1.0
