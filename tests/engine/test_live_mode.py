"""Live mode: unreachable without a promotion and a confirmation; with both, it trades through
(the local fake) Kite: ticks → bars → strategy → risk → KiteBroker → fills in the database."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from brokers.kite.fake_server import FakeKite
from brokers.kite.ticker_protocol import IST
from config.settings import PromotionSettings, load_settings
from engine.cli import main
from engine.runners.live import live_session
from engine.store.schema import FillRow, OrderRow, RunRow
from risk.promotion import evaluate, record
from strategies.sma_cross import SmaCross
from tests.support import PARAMS, stored_runs

INFY = 408065
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
    engine, bt, paper = await stored_runs(tmp_path / "live.db", 22)
    result = evaluate(engine, bt, [paper], PromotionSettings())
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


def tick(ts: datetime, price: float, cum: int) -> dict:
    return {
        "tradable": True,
        "mode": "full",
        "instrument_token": INFY,
        "last_price": price,
        "last_traded_quantity": 1,
        "average_traded_price": price,
        "volume_traded": cum,
        "total_buy_quantity": 0,
        "total_sell_quantity": 0,
        "ohlc": {"open": 100.0, "high": 120.0, "low": 80.0, "close": 100.0},
        "last_trade_time": ts,
        "exchange_timestamp": ts,
    }


async def test_promoted_live_session_trades_through_fake_kite(tmp_path):
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
        task = asyncio.create_task(session.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        # down for seven bars, up (fast crosses above slow: BUY), then down again (SELL)
        path = [100, 99, 98, 97, 96, 95, 94, 100, 106, 112, 112, 100, 90, 80, 80, 80]
        start = datetime(2024, 6, 5, 9, 15, 10, tzinfo=IST)
        for k, price in enumerate(path):
            fake.prices["INFY"] = float(price)
            await fake.ticker.push([tick(start + timedelta(minutes=k), float(price), 1000 * k)])
            await asyncio.sleep(0.15)  # let the bar close, the order go out and fill
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(set(fake.orders) - recorded) < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        session.request_stop()
        await asyncio.wait_for(task, 10)

    placed = [history[-1] for oid, history in fake.orders.items() if oid not in recorded]
    assert [o["transaction_type"] for o in placed] == ["BUY", "SELL"]
    assert all(o["status"] == "COMPLETE" and o["quantity"] == 10 for o in placed)
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.mode == "live")).one()
        fills = conn.execute(select(FillRow).where(FillRow.run_id == run.run_id)).all()
        orders = conn.execute(select(OrderRow).where(OrderRow.run_id == run.run_id)).all()
    assert run.status == "stopped"
    assert [(f.side, f.qty) for f in fills] == [(1, 10), (-1, 10)]
    assert {f.mode for f in fills} == {"live"} and {o.status for o in orders} == {"FILLED"}
    # bar 7 (100) closes when the next tick (106) arrives: the market price the BUY meets
    assert fills[0].price == 106.0
    assert session.pipe.portfolio.holdings() == {}
