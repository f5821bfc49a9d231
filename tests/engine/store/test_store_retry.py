"""Which real database errors a writer waits out — a locked SQLite file, a PostgreSQL lock
timeout, serialization failure or dropped connection — and which fail at once; and a daemon
whose PostgreSQL connections are cut between bars carries on."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import DBAPIError

from app.runners.paper import trading_session
from config.sessions import NSE
from config.settings import load_settings
from engine.data.loader import load_bars
from engine.store.database import open_database
from engine.store.retry import RetryPolicy, is_transient
from engine.store.schema import RunRow
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support.daemon import run_rows, stored
from tests.support.postgres import PostgresServer

ROW = dict(run_id="r1", mode="paper", strategy="s", status="running", created_at="x",
           config_json="{}", code_version="v", data_fingerprint="f", bars_processed=0)  # fmt: skip


def error_of(run: object) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        run()  # type: ignore[operator]
    return caught.value


def test_sqlite_a_lock_is_waited_out_a_broken_statement_is_not(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    engine = open_database(str(db))
    quick = create_engine(f"sqlite:///{db}", connect_args={"timeout": 0.1})
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    def write() -> None:
        with quick.begin() as conn:
            conn.execute(insert(RunRow).values(**ROW))

    locked = error_of(write)
    holder.execute("ROLLBACK")
    assert "database is locked" in str(locked) and is_transient(locked)
    write()
    assert not is_transient(error_of(write))  # the same run twice: a constraint, not a lock
    with engine.connect() as conn:
        assert not is_transient(error_of(lambda: conn.execute(text("SELECT * FROM nowhere"))))


def test_postgresql_lock_timeouts_serialization_failures_and_lost_connections_are_transient(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    engine = open_database(url)
    with engine.begin() as conn:
        conn.execute(insert(RunRow).values(**ROW))
    grab = text("SELECT run_id FROM runs WHERE run_id = 'r1' FOR UPDATE NOWAIT")
    bump = text("UPDATE runs SET bars_processed = bars_processed + 1 WHERE run_id = 'r1'")
    with engine.connect() as holder, engine.connect() as other:
        holder.begin()
        holder.execute(grab)
        other.begin()
        busy = error_of(lambda: other.execute(grab))
        assert getattr(busy.orig, "sqlstate", None) == "55P03" and is_transient(busy)
        other.rollback()
        holder.rollback()

    serializable = engine.execution_options(isolation_level="SERIALIZABLE")
    with serializable.connect() as first, serializable.connect() as second:
        first.begin()
        first.execute(text("SELECT bars_processed FROM runs"))
        second.begin()
        second.execute(bump)
        second.commit()
        conflict = error_of(lambda: first.execute(bump))
        assert getattr(conflict.orig, "sqlstate", None) == "40001" and is_transient(conflict)
        first.rollback()

    with engine.connect() as victim, engine.connect() as admin:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
        cut = error_of(lambda: victim.execute(text("SELECT 1")))
        assert cut.connection_invalidated and is_transient(cut)

    with engine.begin() as conn:
        assert not is_transient(error_of(lambda: conn.execute(insert(RunRow).values(**ROW))))


def test_backoff_doubles_up_to_its_cap_and_ends_with_the_budget() -> None:
    delays = list(RetryPolicy(budget_s=0.5, first_s=0.01, max_s=0.04).delays())
    assert delays[:4] == [0.01, 0.02, 0.04, 0.04]
    assert len(delays) > 10  # nobody slept: the budget is wall time, so the list runs long
    assert list(RetryPolicy(budget_s=0.0).delays()) == []


async def test_a_daemon_rides_out_postgresql_dropping_its_connections(
    postgres: PostgresServer, nifty_path: Path
) -> None:
    """A server restart or failover closes every connection: the next bar's commit gets a
    fresh one (and retries if a commit was cut mid-way), and the run is the same."""
    bars = load_bars([nifty_path], "15minute", end_date=date(2021, 1, 22), session=NSE)
    settings = load_settings("paper", interval="15minute")

    def session(url: str):  # type: ignore[no-untyped-def]
        return trading_session(bars, SmaCross(SmaCrossParams(3, 8, 5)), settings,
                               open_database(url))  # fmt: skip

    reference_url = postgres.new_database()
    await session(reference_url).run()
    url = postgres.new_database()
    cut = session(url)
    task = asyncio.create_task(cut.run())
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    cuts = 0
    for at in (30, 90, 150):
        while cut.status.bars_processed < at:
            assert not task.done()
            await asyncio.sleep(0)
        with admin.connect() as conn:
            cuts += conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    await asyncio.wait_for(task, 120)
    admin.dispose()
    assert cuts >= 3  # the daemon's connections really went, each time
    assert stored(url)[0].status == "finished"
    reference = run_rows(reference_url, stored(reference_url)[0].run_id)
    assert run_rows(url, cut.status.run_id) == reference
