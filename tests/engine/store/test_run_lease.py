"""The run lease on SQLite and on a real PostgreSQL server: one owner at a time, taken
atomically, renewed, released, taken over only when its owner is gone — and every write of a
run conditional on owning it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from sqlalchemy import select, text, update

from engine.bus import EventBus
from engine.portfolio import Portfolio
from engine.store.database import open_database
from engine.store.lease import LeaseLost, RunLease, RunOwned, read_lease
from engine.store.queries import load_run
from engine.store.recorder import RunRecorder
from engine.store.schema import RunRow
from engine.universe import Universe


def new_run(url: str, timeout_s: float = 30.0) -> RunRecorder:
    recorder = RunRecorder(open_database(url), "paper", lease_timeout_s=timeout_s)
    recorder.start("sma_cross", {"params": {}}, "fingerprint")
    return recorder


def set_lease(recorder: RunRecorder, **values: object) -> None:
    with recorder.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.run_id == recorder.run_id).values(**values))


def age_heartbeat(recorder: RunRecorder, seconds: float) -> None:
    set_lease(recorder, lease_heartbeat_at=RunRow.lease_heartbeat_at - seconds)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def status_of(recorder: RunRecorder) -> str:
    return str(load_run(recorder.engine, recorder.run_id)["status"])


def test_a_live_owner_is_never_displaced(db_url: str) -> None:
    owner = new_run(db_url)
    assert status_of(owner) == "running"
    second = RunLease(owner.engine, owner.run_id)
    with pytest.raises(RunOwned) as refused:
        second.acquire()
    message = str(refused.value)
    assert f"pid {owner.lease.pid} on host {owner.lease.host} since " in message
    assert "last heartbeat" in message and owner.run_id in message
    owner.lease.heartbeat()  # still the owner: nothing was taken
    with owner.engine.connect() as conn:
        view = read_lease(conn, owner.run_id)
    assert view is not None and view.owner == owner.lease.owner and view.state == "held"


def test_a_released_lease_is_taken_and_the_old_owner_can_write_no_more(db_url: str) -> None:
    owner = new_run(db_url)
    owner.lease.release()
    successor = RunLease(owner.engine, owner.run_id)
    successor.acquire()
    with pytest.raises(LeaseLost, match=f"pid {successor.pid}"):
        owner.lease.heartbeat()
    assert owner.lease.lost
    portfolio = Portfolio(EventBus(), Universe(), 1_000.0)
    with pytest.raises(LeaseLost):
        owner.finish(status="finished", portfolio=portfolio, metrics={}, quality={},
                     bars_processed=99)  # fmt: skip
    with owner.engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == owner.run_id)).one()
    assert (run.status, run.bars_processed, run.lease_owner) == ("running", 0, successor.owner)


def test_an_expired_heartbeat_is_taken_over_and_the_run_shows_stale(db_url: str) -> None:
    owner = new_run(db_url, timeout_s=5.0)
    set_lease(owner, lease_host="another-host")  # its pid cannot be checked from here
    age_heartbeat(owner, 4.0)
    assert status_of(owner) == "running"  # 4 s without a heartbeat: within its 5 s
    with pytest.raises(RunOwned, match="another-host"):
        RunLease(owner.engine, owner.run_id).acquire()
    age_heartbeat(owner, 2.0)
    assert status_of(owner) == "stale"
    successor = RunLease(owner.engine, owner.run_id)
    successor.acquire()
    with pytest.raises(LeaseLost):
        owner.lease.heartbeat()


def test_a_dead_owner_on_this_host_is_taken_over_at_once(db_url: str) -> None:
    owner = new_run(db_url)
    set_lease(owner, lease_pid=dead_pid())
    assert status_of(owner) == "stale"  # fresh heartbeat, but nobody behind it
    RunLease(owner.engine, owner.run_id).acquire()
    assert status_of(owner) == "running"


def test_of_racing_starters_exactly_one_wins(db_url: str) -> None:
    """Eight threads, each with its own connection pool, take a stale lease at the same
    instant: the conditional UPDATE lets exactly one through."""
    owner = new_run(db_url)
    set_lease(owner, lease_pid=dead_pid())
    racers = 8
    barrier = threading.Barrier(racers)
    won: list[RunLease] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def race() -> None:
        lease = RunLease(open_database(db_url), owner.run_id)
        barrier.wait()
        try:
            lease.acquire()
            won.append(lease)
        except RunOwned as exc:
            refused.append(str(exc))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(won) == 1 and len(refused) == racers - 1
    with owner.engine.connect() as conn:
        assert (
            conn.execute(
                select(RunRow.lease_owner).where(RunRow.run_id == owner.run_id)
            ).scalar_one()
            == won[0].owner
        )


def test_a_run_from_before_leases_reads_as_stale_not_running(tmp_path) -> None:
    """An older database gains the lease columns in place; its runs stored as running had no
    lease, so nobody can be running them now."""
    import sqlite3

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE runs (run_id VARCHAR(32) PRIMARY KEY, mode VARCHAR(8) NOT NULL, "
        "strategy VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, created_at VARCHAR(40) "
        "NOT NULL, finished_at VARCHAR(40), config_json TEXT NOT NULL, code_version VARCHAR(64) "
        "NOT NULL, data_fingerprint VARCHAR(64) NOT NULL, spec_hash VARCHAR(64), model_hash "
        "VARCHAR(64), bars_processed BIGINT NOT NULL, last_bar_ts BIGINT, metrics_json TEXT, "
        "quality_json TEXT, error TEXT)"
    )
    con.execute(
        "INSERT INTO runs VALUES ('old1', 'paper', 'sma_cross', 'running', 'x', NULL, '{}', "
        "'v0', 'fp', NULL, NULL, 10, NULL, NULL, NULL, NULL)"
    )
    con.commit()
    con.close()
    engine = open_database(str(db))
    with engine.connect() as conn:
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(runs)"))}
    assert {"lease_owner", "lease_pid", "lease_host", "lease_heartbeat_at"} <= columns
    assert load_run(engine, "old1")["status"] == "stale"
