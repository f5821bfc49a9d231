"""A database that refuses writes for a while does not kill the daemon, and never lets an order
reach the broker before its row is in the database."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from app.cli import main
from app.runners.paper import trading_session
from config.sessions import NSE
from config.settings import load_settings
from engine.data.loader import load_bars
from engine.events import Order
from engine.store.database import open_database
from engine.store.retry import StoreUnavailable
from engine.store.schema import OrderRow, RiskEventRow, RunRow
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support.daemon import run_rows, stored, trader, wait_until

ARGS = ["--interval", "15minute", "--strategy", "sma_cross", "--param", "fast=3",
        "--param", "slow=8", "--param", "qty=5", "--end-date", "2021-01-22",
        "--slippage-bps", "1"]  # fmt: skip


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's write transaction on the file (``BEGIN IMMEDIATE``: no other writer
    until it ends; readers go on)."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_locked_database_pauses_entries_and_the_run_goes_on_unchanged(
    tmp_path: Path, nifty_path: Path
) -> None:
    whole = tmp_path / "whole.db"
    assert main(["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *ARGS,
                 "--db", str(whole)]) == 0  # fmt: skip
    reference = run_rows(whole, stored(whole)[0].run_id)

    db = tmp_path / "locked.db"
    daemon = trader("paper", "--feed", f"replay:{nifty_path}", "--speed", "200000x", *ARGS,
                    "--db", str(db))  # fmt: skip  # a 15-minute bar every 4.5 ms, a night 0.3 s
    run = wait_until(db, lambda r: r.bars_processed >= 40, daemon)
    holder = hold_write_lock(db)
    time.sleep(8)  # past SQLite's own 5 s busy wait: the commit fails, and fails again
    holder.execute("ROLLBACK")
    holder.close()
    out, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err
    assert "finished" in out

    assert run_rows(db, run.run_id) == reference  # what was decided is what would have been
    with open_database(str(db)).connect() as conn:
        final = conn.execute(select(RunRow)).one()
        events = conn.execute(
            select(RiskEventRow.gate, RiskEventRow.state, RiskEventRow.reason)
            .where(RiskEventRow.gate == "store")
            .order_by(RiskEventRow.seq)
        ).all()
    assert final.status == "finished" and final.risk_state == "ACTIVE"
    assert [(e.gate, e.state) for e in events] == [("store", "REDUCING"), ("store", "ACTIVE")]
    assert "database is locked" in events[0].reason and "no new entries" in events[0].reason
    assert "session.store_paused" in err and "session.store_resumed" in err


def nifty_session(db: Any, nifty_path: Path, **options: Any) -> Any:
    bars = load_bars([nifty_path], "15minute", end_date=date(2021, 1, 22), session=NSE)
    settings = load_settings("paper", interval="15minute")
    return trading_session(bars, SmaCross(SmaCrossParams(3, 8, 5)), settings, db, **options)


def spy_on_submit(session: Any, check: Any) -> list[Order]:
    """Record every order the broker is handed, after ``check(order)``."""
    broker = session.pipe.broker
    handed: list[Order] = []
    submit = broker.submit

    async def spy(order: Order) -> None:
        check(order)
        handed.append(order)
        await submit(order)

    broker.submit = spy
    return handed


async def test_an_order_is_in_the_database_before_the_broker_sees_it(
    db_url: str, nifty_path: Path
) -> None:
    engine = open_database(db_url)
    session = nifty_session(engine, nifty_path)

    def committed(order: Order) -> None:
        with engine.connect() as reader:  # its own connection: sees committed rows only
            status = reader.execute(
                select(OrderRow.status).where(OrderRow.order_id == order.order_id)
            ).scalar_one_or_none()
        assert status == "OPEN", f"{order.order_id} reached the broker unstored"

    handed = spy_on_submit(session, committed)
    await session.run()
    assert len(handed) > 10


async def test_an_order_whose_row_cannot_be_written_is_never_sent(
    tmp_path: Path, nifty_path: Path
) -> None:
    db = tmp_path / "down.db"
    engine = open_database(str(db))

    @event.listens_for(engine, "connect")
    def _short_busy_wait(conn: Any, _record: Any) -> None:  # keep the test short
        conn.execute("PRAGMA busy_timeout = 200")

    engine.dispose()
    session = nifty_session(engine, nifty_path, store_wait_s=1.0)
    handed = spy_on_submit(session, lambda order: None)
    holder: list[sqlite3.Connection] = []

    def lock_at_first_order(order: Order) -> None:  # the database goes away as it is born
        if not holder:
            holder.append(hold_write_lock(db))

    session.pipe.bus.subscribe(Order, lock_at_first_order)
    finish = session._finish

    def database_back_for_the_last_write(outcome: str, error: str | None) -> Any:
        holder[0].execute("ROLLBACK")
        return finish(outcome, error)

    session._finish = database_back_for_the_last_write
    with pytest.raises(StoreUnavailable, match="refused writes for 1s"):
        await session.run()
    assert handed == []
    with engine.connect() as conn:
        run = conn.execute(select(RunRow)).one()
        orders = conn.execute(select(OrderRow.order_id, OrderRow.status, OrderRow.reason)).all()
    assert run.status == "failed" and "refused writes" in run.error
    assert [(o.status, o.reason) for o in orders] == [
        ("REJECTED", "not sent: the database refused its row")
    ]
    # resumed, the order stays unsent: only orders decided from now on reach the broker
    resumed = nifty_session(open_database(str(db)), nifty_path, resume=run.run_id)
    again = spy_on_submit(resumed, lambda order: None)
    await asyncio.wait_for(resumed.run(), 60)
    assert again and orders[0].order_id not in {o.order_id for o in again}


async def test_a_database_gone_for_good_between_bars_fails_the_run(tmp_path: Path) -> None:
    """Past ``--db-wait`` outside a bar (an operator control, a live fill) the session stops:
    it does not trade on, taking a new full wait at every bar."""
    from tests.support import trending

    db = tmp_path / "gone.db"
    engine = open_database(str(db))

    @event.listens_for(engine, "connect")
    def _short_busy_wait(conn: Any, _record: Any) -> None:
        conn.execute("PRAGMA busy_timeout = 100")

    engine.dispose()
    settings = load_settings("paper", interval="15minute")
    session = trading_session(
        trending(3), SmaCross(SmaCrossParams(2, 6, 10)), settings, engine, speed=60.0,
        store_wait_s=0.5,
    )  # fmt: skip  # a bar every 15 s: the control below lands between bars
    task = asyncio.create_task(session.run())
    while session.status.bars_processed < 1:
        await asyncio.sleep(0.01)
    holder = hold_write_lock(db)
    with pytest.raises(StoreUnavailable):
        await session.resume_trading("operator")
    holder.execute("ROLLBACK")
    with pytest.raises(StoreUnavailable, match=r"refused writes for 0\.5s"):
        await asyncio.wait_for(task, 10)
    assert session.status.bars_processed == 1
    with engine.connect() as conn:
        run = conn.execute(select(RunRow)).one()
    assert run.status == "failed" and run.lease_owner is None
