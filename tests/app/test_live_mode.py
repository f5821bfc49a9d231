"""Live mode: unreachable without a promotion and a confirmation; with both, it trades through
(the local fake) Kite: ticks → bars → strategy → risk → KiteBroker → fills in the database."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select

from app.cli import main
from app.runners.live import live_session
from config.sessions import IST, NSE
from config.settings import PromotionSettings, load_settings
from engine.store.schema import EquityRow, FillRow, OrderRow, RunRow
from risk.promotion import evaluate, record
from strategies.sma_cross import SmaCross
from tests.support import PARAMS, stored_runs
from tests.support.fake_kite.server import FakeKite
from tests.support.kite_paper import INFY, kite_paper_run, tick, until

PATH = [100, 99, 98, 97, 96, 95, 94, 100, 106, 112, 112, 100, 90, 80, 80, 80]
BARS_CLOSED = len(PATH) - 1  # the last tick's bar stays open (no later tick closes it)


def start_of(_path: list[int]) -> datetime:
    return datetime(2024, 6, 5, 9, 15, tzinfo=IST)


LIVE_ARGS = [
    "--strategy",
    "sma_cross",
    "--param",
    "fast=2",
    "--param",
    "slow=6",
    "--param",
    "qty=10",
    "--symbols",
    "INFY",
]


async def promoted(tmp_path):
    """An approved promotion on real evidence: a backtest and forward paper trading on the
    fake Kite's live prices (three sessions, the gate lowered to match)."""
    engine, bt, _replay = await stored_runs(tmp_path / "live.db", 1)
    paper = await kite_paper_run(engine, sessions=3)
    result = evaluate(engine, bt, [paper], PromotionSettings(min_paper_days=3))
    assert result.approved, result.reasons
    record(engine, result)
    return engine


def test_live_refuses_without_promotion_cap_or_confirmation(tmp_path, capsys):
    db = str(tmp_path / "none.db")
    assert main(["live", *LIVE_ARGS, "--db", db, "--i-understand-this-is-live"]) == 2
    assert "no approved promotion" in capsys.readouterr().err

    asyncio.run(promoted(tmp_path))
    db = str(tmp_path / "live.db")
    assert (
        main(["live", *LIVE_ARGS, "--db", db, "--capital", "60000", "--i-understand-this-is-live"])
        == 2
    )
    assert "capital cap" in capsys.readouterr().err
    assert main(["live", *LIVE_ARGS, "--db", db]) == 2
    assert "i-understand-this-is-live" in capsys.readouterr().err
    other = [a if a != "fast=2" else "fast=3" for a in LIVE_ARGS]
    assert main(["live", *other, "--db", db, "--i-understand-this-is-live"]) == 2
    assert "no approved promotion" in capsys.readouterr().err


async def trade_through_fake(tmp_path, chaos: bool):
    """A promoted live session on the fake Kite: ticks make bars, sma_cross buys then sells.
    With ``chaos`` the websocket is cut mid-session and order placements meet a 502 and an
    answer that arrives after the client gave up."""
    engine = await promoted(tmp_path)
    settings = load_settings("live", interval="1minute")
    async with FakeKite(heartbeat_s=0.2) as fake:
        fake.add_instrument(INFY, "INFY")
        session = await live_session(
            settings,
            SmaCross(PARAMS),
            engine,
            fake.settings(),
            fake.credentials(),
            ["INFY"],
            broker_options={"poll_interval_s": 0.1},
            flush_interval_s=None,
        )
        recorded = set(fake.orders)  # the fixture order book the fake starts with
        if chaos:
            fake.inject("order.place", status=502, times=1)  # first placement: server error
            fake.inject("order.place", answer_delay_s=12.0, times=1, skip=1)  # second: lost reply
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        # down for seven bars, up (fast crosses above slow: BUY), then down again (SELL)
        path = PATH
        start = start_of(PATH) + timedelta(seconds=10)
        for k, price in enumerate(path):
            if chaos and k == 5:
                await fake.ticker.drop_connections()
                await fake.ticker.wait_subscribed([INFY], "full", timeout=10)
            fake.prices["INFY"] = float(price)
            await fake.ticker.push([tick(start + timedelta(minutes=k), float(price), 1000 * k)])
            # tick k closes bar k-1: wait for it (and its order, if any) before the next tick
            closed = int((start_of(PATH) + timedelta(minutes=k - 1)).timestamp()) * 10**9
            await until(lambda closed=closed: session.status.last_bar_ts >= closed, 3.0)
            await until(lambda: not session.pipe.broker.open_orders(), 5.0)
        await until(
            lambda: (
                len(set(fake.orders) - recorded) >= 2
                and not session.pipe.portfolio.holdings()
                and not session.pipe.broker.open_orders()
            ),
            30.0,
        )
        await asyncio.sleep(0.5)
        session.request_stop()
        await asyncio.wait_for(task, 20)
    placed = [history[-1] for oid, history in fake.orders.items() if oid not in recorded]
    return engine, session, placed


def stored_fills(engine):
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.mode == "live")).one()
        fills = conn.execute(select(FillRow).where(FillRow.run_id == run.run_id)).all()
        orders = conn.execute(select(OrderRow).where(OrderRow.run_id == run.run_id)).all()
    return run, fills, orders


async def test_promoted_live_session_trades_through_fake_kite(tmp_path):
    engine, session, placed = await trade_through_fake(tmp_path, chaos=False)
    assert [o["transaction_type"] for o in placed] == ["BUY", "SELL"]
    assert all(o["status"] == "COMPLETE" and o["quantity"] == 10 for o in placed)
    run, fills, orders = stored_fills(engine)
    assert run.status == "stopped" and run.bars_processed == BARS_CLOSED
    assert [(f.side, f.qty) for f in fills] == [(1, 10), (-1, 10)]
    assert {f.mode for f in fills} == {"live"} and {o.status for o in orders} == {"FILLED"}
    # bar 7 (100) closes when the next tick (106) arrives: the market price the BUY meets
    assert fills[0].price == 106.0
    assert session.pipe.portfolio.holdings() == {}


async def test_live_session_survives_a_dropped_feed_and_failing_order_api(tmp_path):
    engine, session, placed = await trade_through_fake(tmp_path, chaos=True)
    # each order exists exactly once at Kite: no lost orders, no duplicates
    assert [o["transaction_type"] for o in placed] == ["BUY", "SELL"]
    assert len({o["tag"] for o in placed}) == 2
    run, fills, orders = stored_fills(engine)
    assert [(f.side, f.qty) for f in fills] == [(1, 10), (-1, 10)]
    assert {o.status for o in orders} == {"FILLED"}
    assert session.pipe.portfolio.holdings() == {}
    # bars continue after the reconnect, none twice; a bar whose ticks fell into the outage
    # may be missing (documented: no forward fill of a gap)
    with engine.connect() as conn:
        stamps = (
            conn.execute(
                select(EquityRow.ts).where(EquityRow.run_id == run.run_id).order_by(EquityRow.ts)
            )
            .scalars()
            .all()
        )
    assert len(stamps) == len(set(stamps)) == run.bars_processed >= BARS_CLOSED - 1
    last = start_of(PATH) + timedelta(minutes=BARS_CLOSED - 1)
    assert run.last_bar_ts == int(last.timestamp()) * 1_000_000_000


async def test_paper_on_live_kite_prices_never_sends_orders_to_kite(tmp_path):
    from app.runners.live import kite_source
    from app.runners.paper import trading_session
    from engine.store.database import open_database

    engine = open_database(str(tmp_path / "paper-kite.db"))
    settings = load_settings("paper", interval="1minute")
    async with FakeKite(heartbeat_s=0.2) as fake:
        fake.add_instrument(INFY, "INFY")
        source = await kite_source(
            settings, fake.settings(), fake.credentials(), ["INFY"], flush_interval_s=None
        )
        session = trading_session(source, SmaCross(PARAMS), settings, engine)
        recorded = set(fake.orders)
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        start = start_of(PATH) + timedelta(seconds=10)
        for k, price in enumerate(PATH):
            await fake.ticker.push([tick(start + timedelta(minutes=k), float(price), 1000 * k)])
            closed = int((start_of(PATH) + timedelta(minutes=k - 1)).timestamp()) * 10**9
            await until(lambda closed=closed: session.status.last_bar_ts >= closed, 3.0)
        session.request_stop()
        await asyncio.wait_for(task, 10)
    assert set(fake.orders) == recorded  # the simulated broker filled everything
    with engine.connect() as conn:
        fills = conn.execute(select(FillRow).order_by(FillRow.seq)).all()
    assert [(f.side, f.mode) for f in fills] == [(1, "paper"), (-1, "paper")]
    # one tick per bar, so each bar's open is that tick: the BUY decided on the 09:22 bar
    # fills at the 09:23 bar's open (106), as in a backtest — not when Kite would have filled
    assert fills[0].price == 106.0


async def test_live_session_warms_up_from_kite_history_without_orders(tmp_path):
    from datetime import date

    from app.runners.live import history_for_warmup
    from strategies.sma_cross import N_SEEN

    engine = await promoted(tmp_path)
    settings = load_settings("live", interval="1minute")
    async with FakeKite(heartbeat_s=0.2) as fake:
        fake.add_instrument(INFY, "INFY")
        warm = await history_for_warmup(
            fake.settings(),
            fake.credentials(),
            ["INFY"],
            "1minute",
            3,
            tmp_path / "hist",
            date(2024, 6, 5),
            session=NSE,
            now=datetime(2024, 6, 5, 9, 0, tzinfo=IST),  # started before the open
        )
        assert warm is not None and set(warm.frame["symbol"]) == {"INFY"}
        days = sorted({str(d) for d in warm.frame["ts"].dt.date})
        assert days == ["2024-06-03", "2024-06-04"]  # Sunday 2nd has no session; 5th not open yet
        session = await live_session(
            settings,
            SmaCross(PARAMS),
            engine,
            fake.settings(),
            fake.credentials(),
            ["INFY"],
            flush_interval_s=None,
            warmup=warm,
        )
        recorded = set(fake.orders)
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        session.request_stop()
        await asyncio.wait_for(task, 10)
    assert session.status.warmup_bars == len(warm.frame) == 2 * 375
    sid = session.pipe.universe.sid("INFY")
    assert session.pipe.host.strategy._state[sid, N_SEEN] == 2 * 375  # every bar seen
    assert set(fake.orders) == recorded and session.status.bars_processed == 0
    assert session.pipe.portfolio.holdings() == {}


async def test_a_silent_feed_stops_new_entries_through_the_risk_monitor(tmp_path):
    """The websocket stays open but nothing arrives (no ticks, no heartbeats): the ticker's
    watchdog reports it, the session's risk monitor goes REDUCING (no new exposure), the event
    is stored at once, and the ticker reconnects."""
    from app.runners.live import kite_source
    from app.runners.paper import trading_session
    from engine.events import TradingState
    from engine.store.database import open_database
    from engine.store.schema import RiskEventRow

    engine = open_database(str(tmp_path / "stale.db"))
    settings = load_settings("paper", interval="1minute")
    async with FakeKite(heartbeat_s=60) as fake:  # silent: no heartbeat within the test
        fake.add_instrument(INFY, "INFY")
        source = await kite_source(
            settings, fake.settings(feed_silence_s=0.3), fake.credentials(), ["INFY"],
            flush_interval_s=None,
        )  # fmt: skip
        session = trading_session(source, SmaCross(PARAMS), settings, engine)
        task = asyncio.create_task(session.run())
        await until(lambda: session.pipe.state.state is TradingState.REDUCING, 5.0)
        await until(lambda: source.client is not None and source.client.stats.connects >= 2, 5.0)
        session.request_stop()
        await asyncio.wait_for(task, 10)
    assert session.pipe.state.reason.startswith("no market data for")
    with engine.connect() as conn:
        events = conn.execute(select(RiskEventRow.gate, RiskEventRow.state)).all()
    assert ("stale_data", "REDUCING") in [tuple(e) for e in events]


async def test_the_live_feed_rejects_ticks_by_the_runs_data_settings(monkeypatch):
    """``data.max_bar_move_pct`` reaches the tick aggregator of paper-on-Kite and live."""
    import app.runners.live as live

    async def tokens(*_: object) -> dict[int, str]:
        return {INFY: "INFY"}

    monkeypatch.setattr(live, "instrument_tokens", tokens)
    settings = load_settings("paper", interval="1minute", data={"max_bar_move_pct": 12.5})
    source = await live.kite_source(settings, None, None, ["INFY"])
    assert source._aggregator.max_move_pct == 12.5


async def test_a_feed_without_ticks_is_stale_until_ticks_flow_again(tmp_path):
    """Heartbeats but no ticks for ``feed_tick_silence_s``: REDUCING (no new entries on stale
    bars) through the risk monitor, the ticker reconnects and resubscribes, and the first
    ticks on the new connection lift the stale-data limit (only that one)."""
    from app.runners.live import kite_source
    from app.runners.paper import trading_session
    from engine.events import TradingState
    from engine.store.database import open_database
    from engine.store.schema import RiskEventRow

    engine = open_database(str(tmp_path / "quiet.db"))
    settings = load_settings("paper", interval="1minute")
    async with FakeKite(heartbeat_s=0.05) as fake:
        fake.add_instrument(INFY, "INFY")
        kite = fake.settings(feed_silence_s=2.0, feed_tick_silence_s=0.3)
        source = await kite_source(settings, kite, fake.credentials(), ["INFY"],
                                   flush_interval_s=None)  # fmt: skip
        session = trading_session(source, SmaCross(PARAMS), settings, engine)
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        start = start_of(PATH) + timedelta(seconds=10)
        await fake.ticker.push([tick(start, 100.0, 1000)])
        fake.ticker.go_quiet()
        assert await until(lambda: session.pipe.state.state is TradingState.REDUCING, 5.0)
        assert session.pipe.state.gate == "stale_data"
        assert await until(
            lambda: source.client is not None and source.client.stats.connects >= 2, 5.0
        )
        await fake.ticker.wait_subscribed([INFY], "full")
        await fake.ticker.push([tick(start + timedelta(seconds=20), 101.0, 2000)])
        assert await until(lambda: session.pipe.state.state is TradingState.ACTIVE, 5.0)
        session.request_stop()
        await asyncio.wait_for(task, 10)
    with engine.connect() as conn:
        events = conn.execute(select(RiskEventRow.gate, RiskEventRow.state)).all()
    assert [tuple(e) for e in events][:2] == [("stale_data", "REDUCING"), ("stale_data", "ACTIVE")]
