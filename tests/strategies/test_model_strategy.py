"""The model strategy: predictions computed ahead (cached) take the same decisions as bar by bar,
through the strategy alone and through the whole pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from config.sessions import NSE
from engine.events import BarSlice, FeatureSlice, OrderType, Side
from models.dataset import FeatureTable
from models.inference import OnlinePredictor, Predictor
from models.network import BUY, HOLD, SELL
from models.predictions import PrecomputedPredictor
from models.scaler import Scaler
from models.synthetic import synthetic_table
from strategies.model_strategy import ModelStrategy, ModelStrategyParams, decide
from tests.support.models import trading_model

N_FEATURES, WINDOW = 6, 12


class FakeContext:
    """Fills every target at once; records the targets the strategy sets."""

    def __init__(self) -> None:
        self.ts_ns = 0
        self.held: dict[str, int] = {}
        self.targets: list[tuple[int, str, int]] = []

    def position(self, symbol: str) -> int:
        return self.held.get(symbol, 0)

    def pending(self, symbol: str) -> int:
        return 0

    def positions_by_sid(self) -> np.ndarray:
        raise NotImplementedError

    def equity(self) -> float:
        return 1_000_000.0

    def submit(
        self,
        symbol: str,
        side: Side,
        qty: int,
        order_type: OrderType = OrderType.MARKET,
        limit_price: float = float("nan"),
        stop_price: float = float("nan"),
        reason: str = "",
    ) -> None:
        raise AssertionError("the model strategy sets targets")

    def target(self, symbol: str, qty: int, reason: str = "") -> None:
        assert reason.startswith("model p(SELL)=")
        self.targets.append((self.ts_ns, symbol, qty))
        self.held[symbol] = qty


def slices(table: FeatureTable) -> Iterator[tuple[BarSlice, FeatureSlice]]:
    days = table.session_ids
    first = np.ones(len(table), dtype=bool)
    first[1:] = (days[1:] != days[:-1]) | (table.symbol_codes[1:] != table.symbol_codes[:-1])
    assert table.close is not None
    for seq, ts in enumerate(np.unique(table.ts_ns)):
        rows = np.flatnonzero(table.ts_ns == ts)
        sid = table.symbol_codes[rows].astype(np.int64)
        symbols = tuple(table.symbols[s] for s in sid)
        c = table.close[rows]
        bars = BarSlice(
            int(ts),
            2 * seq,
            300_000_000_000,
            sid,
            symbols,
            c,
            c,
            c,
            c,
            np.zeros(len(rows)),
            first[rows],
        )
        feats = FeatureSlice(
            int(ts),
            2 * seq + 1,
            sid,
            symbols,
            table.values[rows],
            table.ready[rows],
            table.spec_hash,
        )
        yield bars, feats


def network(path: Path) -> Predictor:
    return Predictor.from_paths([path], expected_spec_hash=None)


def online(params: ModelStrategyParams) -> ModelStrategy:
    """The strategy as paper and live run it: one forward pass per slice."""
    return ModelStrategy(params, OnlinePredictor(network(Path(params.model))))


def ahead(params: ModelStrategyParams, table: FeatureTable) -> tuple[ModelStrategy, bool]:
    """The strategy as a replay runs it, and whether its predictions came from the cache."""
    predictor = PrecomputedPredictor(network(Path(params.model)), table, params.cache_dir)
    return ModelStrategy(params, predictor), predictor.cache_hit


def run(strategy: ModelStrategy, table: FeatureTable) -> list[tuple[int, str, int]]:
    ctx = FakeContext()
    strategy.on_start(ctx)
    for bars, feats in slices(table):
        ctx.ts_ns = bars.ts_ns
        strategy.on_bars(bars, ctx)
        strategy.on_features(feats, ctx)
    return ctx.targets


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return synthetic_table(n_symbols=4, days=4, bars_per_day=75, n_features=N_FEATURES, seed=8)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, table: FeatureTable) -> Path:
    """A random network whose last layer is recentred so its calls vary from bar to bar."""
    scaler = Scaler(np.full(N_FEATURES, 1.5), np.ones(N_FEATURES), 1)
    path = tmp_path_factory.mktemp("model") / "m.ckpt"
    return trading_model(table, path, window=WINDOW, seed=0, scaler=scaler)


@pytest.mark.parametrize("sizing", ["notional", "volatility"])
def test_batched_path_takes_the_same_decisions(
    model_path: Path, table: FeatureTable, tmp_path: Path, sizing: str
) -> None:
    params = ModelStrategyParams(
        model=str(model_path),
        entry_threshold=0.55,
        exit_threshold=0.45,
        sizing=sizing,
        cache_dir=str(tmp_path),
    )
    bar_by_bar = run(online(params), table)
    batched, hit = ahead(params, table)
    assert hit is False  # computed, then cached on disk
    decisions = run(batched, table)
    assert len(bar_by_bar) > 20
    assert {q > 0 for _, _, q in bar_by_bar} >= {True, False}
    assert decisions == bar_by_bar
    again, hit = ahead(params, table)
    assert hit is True  # cache hit keyed by model + data
    assert run(again, table) == bar_by_bar


def test_cache_is_keyed_by_the_data(model_path: Path, table: FeatureTable, tmp_path: Path) -> None:
    params = ModelStrategyParams(model=str(model_path), cache_dir=str(tmp_path))
    assert ahead(params, table)[1] is False
    values = table.values.copy()
    values[100, 2] += 1.0
    changed = FeatureTable(
        table.ts_ns,
        table.symbol_codes,
        table.symbols,
        values,
        table.ready,
        table.spec_hash,
        table.feature_names,
        table.close,
    )
    assert ahead(params, changed)[1] is False
    assert len(list(tmp_path.glob("pred-*.npz"))) == 2


def test_cached_rerun_is_much_faster(model_path: Path, tmp_path: Path) -> None:
    big = synthetic_table(n_symbols=6, days=6, bars_per_day=75, n_features=N_FEATURES, seed=9)
    params = ModelStrategyParams(model=str(model_path), cache_dir=str(tmp_path))
    started = time.perf_counter()
    ahead(params, big)
    first = time.perf_counter() - started
    started = time.perf_counter()
    assert ahead(params, big)[1] is True
    assert time.perf_counter() - started < first


def test_features_of_another_spec_are_refused(model_path: Path) -> None:
    other = synthetic_table(
        n_symbols=1, days=1, bars_per_day=20, n_features=N_FEATURES, spec_hash="other-spec"
    )
    params = ModelStrategyParams(model=str(model_path))
    with pytest.raises(ValueError, match=r"synthetic-spec.*other-spec"):
        run(online(params), other)
    with pytest.raises(ValueError, match=r"synthetic-spec.*other-spec"):
        ahead(params, other)


def probs(*rows: tuple[float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def test_decide_rules() -> None:
    p = ModelStrategyParams(entry_threshold=0.6, exit_threshold=0.4)
    calls = probs(
        (0.1, 0.2, 0.7),
        (0.7, 0.2, 0.1),
        (0.3, 0.4, 0.3),
        (0.2, 0.45, 0.35),
        (0.2, 0.35, 0.45),
        (0.65, 0.05, 0.3),
    )
    held = np.array([0, 0, 0, 5, 5, 5])
    assert decide(calls, held, p, may_enter=True).tolist() == [1, -1, 0, 0, 1, -1]
    # shorts off: no short entry, a long's reversal becomes a close
    no_short = ModelStrategyParams(entry_threshold=0.6, exit_threshold=0.4, allow_short=False)
    assert decide(calls, held, no_short, True).tolist() == [1, 0, 0, 0, 1, 0]
    # after the last entry time only exits happen
    assert decide(calls, held, p, may_enter=False).tolist() == [0, 0, 0, 0, 1, 0]
    short_held = np.array([-3, -3])
    assert decide(probs((0.5, 0.4, 0.1), (0.35, 0.3, 0.35)), short_held, p, True).tolist() == [
        -1,
        0,
    ]
    assert (SELL, HOLD, BUY) == (0, 1, 2)


def test_params_from_strings_and_validation() -> None:
    params = ModelStrategyParams.from_strings(
        {"model": "a.ckpt,b.ckpt", "entry_threshold": "0.7", "allow_short": "false"}
    )
    assert isinstance(params, ModelStrategyParams)
    assert params.model_paths == ["a.ckpt", "b.ckpt"] and not params.allow_short
    with pytest.raises(ValueError, match="exit_threshold"):
        ModelStrategyParams.from_strings({"entry_threshold": "0.4", "exit_threshold": "0.5"})
    with pytest.raises(ValueError, match="last_entry"):
        ModelStrategyParams.from_strings({"last_entry": "3pm"})
    with pytest.raises(ValueError, match="no predictor"):
        ModelStrategy(ModelStrategyParams()).on_start(FakeContext())
    from app.wiring import attach_predictor

    with pytest.raises(ValueError, match="parameter model is required"):
        attach_predictor(ModelStrategy(ModelStrategyParams()))


def test_same_trades_through_the_engine_pipeline(nifty_path: Path, tmp_path: Path) -> None:
    """Bar by bar (the online predictor, as paper and live decide) vs predictions computed
    ahead, each through the real backtest runner: the same orders, fills, trades and equity."""
    import asyncio
    from datetime import date

    from app.runners.backtest import run_backtest
    from config.settings import load_settings
    from engine.data.loader import load_bars
    from models.feature_source import table_from_loaded_bars

    bars = load_bars([nifty_path], "5minute", date(2021, 1, 1), date(2021, 2, 15), session=NSE)
    path = trading_model(table_from_loaded_bars(bars), tmp_path / "m.ckpt")
    settings = load_settings("backtest", interval="5minute")
    params = ModelStrategyParams(
        model=str(path), entry_threshold=0.55, exit_threshold=0.45, cache_dir=str(tmp_path)
    )
    arms = {}
    for predictions in ("bar_by_bar", "ahead"):
        strategy = ModelStrategy(params)
        result = asyncio.run(run_backtest(bars, strategy, settings, predictions=predictions))
        kind = type(strategy.predictor).__name__
        arms[predictions] = (kind, result, dict(strategy.stats))
    assert arms["bar_by_bar"][0] == "OnlinePredictor"
    assert arms["ahead"][0] == "PrecomputedPredictor"
    by_bar, batched = arms["bar_by_bar"][1], arms["ahead"][1]
    assert by_bar.orders > 10 and len(by_bar.trades) > 5
    assert by_bar.trades == batched.trades
    assert by_bar.metrics == batched.metrics
    assert by_bar.pipeline.portfolio.curve_equity == batched.pipeline.portfolio.curve_equity
    assert arms["bar_by_bar"][2] == arms["ahead"][2]
    assert "model_calls" in batched.extra  # scored against the realised labels
