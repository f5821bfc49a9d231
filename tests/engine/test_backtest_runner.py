"""The assembled pipeline: timing, determinism, square-off, risk halts, failures."""

from __future__ import annotations

import numpy as np
import pytest

from app.runners.backtest import run_backtest
from config.settings import load_settings
from engine.bus import HandlerError
from engine.data.synthetic import SyntheticMarket
from engine.events import BarSlice, Fill, Order, RiskEvent, Side, TradingState
from strategies.base import Strategy
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support import make_bars


class Scripted(Strategy):
    """Buys ``qty`` of every symbol whenever flat (and records what it saw)."""

    name = "scripted"

    def __init__(self, qty: int = 10, every_bar: bool = False) -> None:
        super().__init__()
        self.qty, self.every_bar = qty, every_bar
        self.seen: list[int] = []

    def on_bars(self, bars: BarSlice, ctx) -> None:
        self.seen.append(bars.ts_ns)
        for symbol in bars.symbols:
            if self.every_bar or ctx.position(symbol) + ctx.pending(symbol) == 0:
                ctx.submit(symbol, Side.BUY, self.qty, reason="scripted")


def settings(**kw):
    return load_settings(**{"costs": {"model": "none"}, **kw})


async def test_same_inputs_same_run_bit_for_bit():
    bars = SyntheticMarket(symbols=3, days=8, seed=3).bars("5minute")
    runs = []
    for _ in range(2):
        r = await run_backtest(bars, SmaCross(SmaCrossParams(5, 20, 3)), load_settings())
        pf = r.pipeline.portfolio
        runs.append((r.trades, np.asarray(pf.curve_equity).tobytes(), r.metrics))
    assert runs[0] == runs[1] and len(runs[0][0]) > 10


async def test_fills_always_on_a_later_bar_at_that_bars_open():
    bars = SyntheticMarket(symbols=2, days=3, seed=5).bars("5minute")
    frame = bars.frame.set_index(["symbol", "ts"])
    r = await run_backtest(
        bars, SmaCross(SmaCrossParams(3, 8, 1)), settings(session={"square_off_enabled": False})
    )
    orders: dict[str, Order] = {}
    fills: list[Fill] = []
    # re-run with taps on the bus
    from app.wiring import build_pipeline

    pipe = build_pipeline(
        settings(session={"square_off_enabled": False}), SmaCross(SmaCrossParams(3, 8, 1))
    )
    pipe.bus.subscribe(Order, lambda o: orders.__setitem__(o.order_id, o))
    pipe.bus.subscribe(Fill, fills.append)
    from engine.data.replay import ReplayFeed

    for s in ReplayFeed(bars, pipe.universe).slices(pipe.bus.next_seq):
        await pipe.bus.publish(s)
    assert len(fills) > 5 and len(fills) >= len(r.trades)
    for f in fills:
        assert f.ts_ns > orders[f.order_id].ts_ns
        ts = __import__("pandas").Timestamp(f.ts_ns, tz="UTC").tz_convert("Asia/Kolkata")
        assert f.price == frame.loc[(f.symbol, ts), "open"]


async def test_no_lookahead_future_bars_do_not_change_past_decisions():
    market = SyntheticMarket(symbols=2, days=6, seed=11)
    bars = market.bars("5minute")
    cut = bars.frame["ts"].sort_values().unique()[200]
    changed = bars.frame.copy()
    later = changed["ts"] > cut
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.3
    import dataclasses

    bars2 = dataclasses.replace(bars, frame=changed)
    a = await run_backtest(bars, SmaCross(SmaCrossParams(3, 12, 1)), settings())
    b = await run_backtest(bars2, SmaCross(SmaCrossParams(3, 12, 1)), settings())
    cut_iso = cut.isoformat()
    before_a = [t for t in a.trades if t["exit_time"] <= cut_iso]
    before_b = [t for t in b.trades if t["exit_time"] <= cut_iso]
    assert before_a == before_b and len(before_a) > 3


async def test_intraday_square_off_closes_at_1520_and_blocks_new_entries():
    bars = SyntheticMarket(symbols=2, days=3, seed=2).bars("5minute")
    r = await run_backtest(bars, Scripted(qty=1), settings())
    squared = [t for t in r.trades if t["exit_reason"] == "intraday square-off"]
    assert len(squared) >= 4  # 2 symbols × (at least) 2 sessions before the last
    assert all(t["exit_time"][11:16] == "15:20" for t in squared)
    # entries after square-off time were denied by the trading window, and nothing overnight
    assert all(t["entry_time"][11:16] < "15:20" for t in r.trades)
    assert r.denials > 0


async def test_square_off_can_be_switched_off():
    bars = SyntheticMarket(symbols=1, days=3, seed=2).bars("5minute")
    r = await run_backtest(bars, Scripted(qty=1), settings(session={"square_off_enabled": False}))
    assert [t["exit_reason"] for t in r.trades] == ["end of data"]


async def test_drawdown_halts_flattens_and_denies_further_orders():
    falling = {"X": list(np.linspace(1000, 800, 300))}
    bars = make_bars(falling)
    s = settings(
        interval="1minute",
        capital=100_000,
        risk={"max_drawdown_pct": 3.0, "reduce_drawdown_pct": 2.0, "max_gross_exposure": 10.0},
    )
    events: list[RiskEvent] = []
    r = await run_backtest(bars, Scripted(qty=100, every_bar=False), s)
    pipe = r.pipeline
    assert pipe.state.state == TradingState.HALTED
    exits = [t for t in r.trades if t["exit_reason"].startswith("flatten on halt")]
    assert len(exits) == 1 and pipe.portfolio.holdings() == {}
    assert r.metrics["max_drawdown"] < 0.04  # halted near the 3% limit, not ridden to -20%
    assert r.denials > 100  # the strategy kept asking; HALTED said no
    del events


async def test_handler_exception_stops_the_run_naming_the_event():
    class Broken(Strategy):
        name = "broken"

        def on_bars(self, bars, ctx):
            if len(bars.symbols) and bars.seq > 50:
                raise RuntimeError("model exploded")

    bars = SyntheticMarket(symbols=1, days=1).bars("5minute")
    with pytest.raises(HandlerError, match=r"BarSlice seq=\d+ at 2024-01-01"):
        await run_backtest(bars, Broken(), settings())


async def test_kill_switch_survives_a_new_session_drawdown_halt_does_not():
    bars = SyntheticMarket(symbols=1, days=3, seed=4).bars("5minute")
    from app.wiring import build_pipeline
    from engine.data.replay import ReplayFeed

    pipe = build_pipeline(settings(), Scripted(qty=1))
    slices = list(ReplayFeed(bars, pipe.universe).slices(pipe.bus.next_seq))
    for s in slices[:10]:
        await pipe.bus.publish(s)
    assert pipe.portfolio.holdings()
    await pipe.monitor.kill_switch(slices[9].ts_ns, "test")
    await pipe.bus.publish(slices[10])  # flatten fills at this bar's open
    assert pipe.portfolio.holdings() == {}
    for s in slices[11:]:
        await pipe.bus.publish(s)
    assert pipe.state.state == TradingState.HALTED
    assert pipe.portfolio.holdings() == {}  # nothing was bought on later days either


async def test_denials_and_state_changes_are_stored(tmp_path):
    from sqlalchemy import select

    from engine.store.database import open_database
    from engine.store.recorder import RunRecorder
    from engine.store.schema import OrderRow, RiskEventRow

    bars = make_bars({"X": list(np.linspace(1000, 800, 200))})
    s = settings(
        interval="1minute",
        capital=100_000,
        risk={"max_drawdown_pct": 3.0, "reduce_drawdown_pct": 2.0, "max_gross_exposure": 10.0},
    )
    recorder = RunRecorder(open_database(str(tmp_path / "r.db")), "backtest")
    r = await run_backtest(bars, Scripted(qty=100), s, recorder)
    with recorder.engine.connect() as conn:
        events = conn.execute(select(RiskEventRow).order_by(RiskEventRow.seq)).all()
        statuses = set(conn.execute(select(OrderRow.status)).scalars())
    kinds = {(e.kind, e.gate) for e in events}
    assert ("state", "drawdown") in kinds and ("state", "max_drawdown") in kinds
    denials = [e for e in events if e.kind == "deny"]
    assert len(denials) == r.denials > 0
    assert all(e.gate == "trading_state" and "HALTED" in e.reason for e in denials)
    assert statuses == {"FILLED"}
