"""One owner per run, end to end: two resumes of a killed paper run at once (SQLite and a real
PostgreSQL server), a daemon that loses its run, Ctrl-C and kills as `runs list` and `promote`
see them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.cli import main
from app.runners.paper import trading_session
from config.sessions import NSE
from config.settings import load_settings
from engine.data.loader import load_bars
from engine.store.database import open_database
from engine.store.lease import LeaseLost, RunOwned, db_now
from engine.store.schema import EquityRow, FillRow, OrderRow, RunRow
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support.daemon import run_rows, stored, trader, wait_until

STRATEGY = ["--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8",
            "--param", "qty=5"]  # fmt: skip
#: a quarter of 15-minute bars: a resume at full speed takes seconds, long enough for a second
#: starter to meet the first one's lease rather than its finished run
QUARTER = ["--interval", "15minute", *STRATEGY, "--end-date", "2021-03-31", "--slippage-bps", "1"]
#: a year of minutes, as a backtest: long enough to be stopped part-way
MINUTES = ["--interval", "1minute", *STRATEGY, "--no-progress"]


def paper(nifty: Path, db: str | Path, *extra: str) -> list[str]:
    return ["paper", "--feed", f"replay:{nifty}", *QUARTER, "--db", str(db), *extra]


def open_orders(db: str, run_id: str) -> int:
    engine = open_database(db)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.run_id == run_id, OrderRow.status == "OPEN")
        ).scalar_one()
    engine.dispose()
    return int(n)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, nifty_path: Path) -> dict[str, Any]:
    """The quarter's paper run, start to end in one go: what a crashed and resumed run must
    have stored (on either backend)."""
    db = tmp_path_factory.mktemp("whole") / "whole.db"
    assert main(paper(nifty_path, db, "--speed", "max")) == 0
    return run_rows(db, stored(db)[0].run_id)


def test_two_resumes_at_once_give_one_owner_and_no_duplicate_rows(
    db_url: str, nifty_path: Path, uninterrupted: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    if "postgresql" in db_url:  # it really is a server, not SQLite under another name
        assert "PostgreSQL" in request.getfixturevalue("postgres").version(db_url)
    reference = uninterrupted
    first = trader(*paper(nifty_path, db_url, "--speed", "3000x"))  # a 15-min bar ≈ 0.3 s
    run = wait_until(
        db_url, lambda r: r.bars_processed > 0 and open_orders(db_url, r.run_id), first
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert open_orders(db_url, run.run_id) == 1  # killed while an order was at the broker
    assert stored(db_url)[0].status == "running"

    resumers = [trader(*paper(nifty_path, db_url, "--speed", "max", "--resume", run.run_id))
                for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in resumers]
    codes = [p.returncode for p in resumers]
    assert sorted(codes) == [0, 2], outputs
    winner = resumers[codes.index(0)]
    refused = outputs[codes.index(2)][1]
    assert f"is owned by pid {winner.pid} on host " in refused, refused
    assert " since " in refused and "Traceback" not in refused

    resumed = run_rows(db_url, run.run_id)
    for key in ("orders", "fills", "equity", "trades"):
        rows = resumed[key]
        assert len(rows) == len(set(rows)), f"duplicate {key}"
        assert rows == reference[key], key
    stamps = [ts for ts, _ in resumed["equity"]]
    assert len(stamps) == len(set(stamps))
    (final,) = stored(db_url)
    assert final.status == "finished" and final.lease_owner is None
    assert final.lease_pid == winner.pid


async def test_a_session_that_loses_its_run_stops_and_writes_nothing_more(
    db_url: str, nifty_path: Path
) -> None:
    """Another process took the run over (this one stalled past its lease): at the next
    commit this session finds out, writes nothing, and stops with ``LeaseLost``."""
    engine = open_database(db_url)
    bars = load_bars([nifty_path], "15minute", end_date=date(2021, 2, 15), session=NSE)
    settings = load_settings("paper", interval="15minute")
    session = trading_session(bars, SmaCross(SmaCrossParams(3, 8, 5)), settings, engine)
    task = asyncio.create_task(session.run())
    while session.status.bars_processed < 40:
        assert not task.done()
        await asyncio.sleep(0)
    run_id = session.status.run_id
    with engine.begin() as conn:  # what a takeover by another process writes
        conn.execute(
            update(RunRow)
            .where(RunRow.run_id == run_id)
            .values(lease_owner="another", lease_pid=1, lease_host="elsewhere",
                    lease_heartbeat_at=db_now(conn))
        )  # fmt: skip
        taken = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()
        equity = conn.execute(select(func.count()).select_from(EquityRow)).scalar_one()
        fills = conn.execute(select(func.count()).select_from(FillRow)).scalar_one()
    with pytest.raises(LeaseLost, match="pid 1 on host elsewhere"):
        await asyncio.wait_for(task, 30)
    assert session.status.bars_processed <= taken.bars_processed + 1  # the bar in hand at most
    with engine.connect() as conn:
        after = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()
        assert conn.execute(select(func.count()).select_from(EquityRow)).scalar_one() == equity
        assert conn.execute(select(func.count()).select_from(FillRow)).scalar_one() == fills
    assert (after.status, after.bars_processed, after.lease_owner) == (
        "running", taken.bars_processed, "another",
    )  # fmt: skip


async def test_an_idle_session_notices_a_takeover_by_its_heartbeat(tmp_path: Path) -> None:
    """Between bars (a night, a slow pace) nothing commits: the heartbeat finds the new owner
    and the session stops before its next bar."""
    from tests.support import trending

    engine = open_database(str(tmp_path / "idle.db"))
    settings = load_settings("paper", interval="15minute")
    session = trading_session(
        trending(3), SmaCross(SmaCrossParams(2, 6, 10)), settings, engine, speed=60.0,
        lease_timeout_s=0.6,
    )  # fmt: skip  # a 15-minute bar every 15 s; a heartbeat every 0.2 s
    task = asyncio.create_task(session.run())
    while session.status.bars_processed < 1:
        await asyncio.sleep(0.01)
    with engine.begin() as conn:
        conn.execute(
            update(RunRow).values(lease_owner="another", lease_pid=1, lease_host="elsewhere")
        )
    started = time.monotonic()
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 5  # well before the next bar, 15 s on
    assert session.status.bars_processed == 1


def test_ctrl_c_stores_a_partial_backtest_as_interrupted_and_promote_refuses_it(
    tmp_path: Path, nifty_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bt.db"
    proc = trader("backtest", "--data", str(nifty_path), *MINUTES, "--db", str(db))
    wait_until(db, lambda r: r.status == "running", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (run,) = stored(db)
    assert run.status == "interrupted" and run.error and run.lease_owner is None
    assert 0 < run.bars_processed < 90_000  # of a year of minutes: it stopped part-way
    assert main(["runs", "list", "--db", str(db)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith(run.run_id)]
    assert " interrupted " in line
    assert main(["promote", "--to", "live", "--backtest", run.run_id, "--db", str(db)]) == 2
    assert "is not a finished backtest (backtest, interrupted)" in capsys.readouterr().out


def test_killed_runs_show_as_stale_are_no_evidence_and_can_be_resumed(
    tmp_path: Path, nifty_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "killed.db"
    # a backtest has no SIGTERM handler: the signal kills it mid-run
    backtest = trader("backtest", "--data", str(nifty_path), *MINUTES, "--db", str(db))
    wait_until(db, lambda r: r.status == "running", backtest)
    backtest.send_signal(signal.SIGTERM)
    backtest.wait(60)
    daemon = trader(*paper(nifty_path, db, "--speed", "3000x"))
    wait_until(db, lambda r: len(stored(db)) == 2 and stored(db)[1].bars_processed >= 20, daemon)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(10)
    killed_backtest, killed_paper = stored(db)
    assert killed_backtest.status == killed_paper.status == "running"  # as stored

    capsys.readouterr()
    assert main(["runs", "list", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    for run in (killed_backtest, killed_paper):
        (line,) = [x for x in listed.splitlines() if x.startswith(run.run_id)]
        assert " stale " in line
    assert main(["runs", "show", killed_paper.run_id, "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "status=stale" in shown and f"pid {daemon.pid}" in shown
    promote = ["promote", "--to", "live", "--backtest", killed_backtest.run_id,
               "--paper", killed_paper.run_id, "--db", str(db)]  # fmt: skip
    assert main(promote) == 2
    refused = capsys.readouterr().out
    assert "(backtest, stale)" in refused and f"paper run {killed_paper.run_id} is stale" in refused

    resume = paper(nifty_path, db, "--speed", "max", "--resume", killed_paper.run_id)
    assert main(resume) == 0  # at once: its owner is gone from this host
    assert stored(db)[1].status == "finished"


async def test_a_second_live_process_is_refused_before_it_talks_to_kite(tmp_path: Path) -> None:
    """Live, a second owner would send real orders twice: it is refused before its broker
    does anything — no order book read, no order placed, no ticker connection."""
    from app.runners.live import live_session
    from tests.app.test_live_mode import INFY, promoted
    from tests.support import PARAMS
    from tests.support.fake_kite.server import FakeKite

    engine = await promoted(tmp_path)
    settings = load_settings("live", interval="1minute")
    async with FakeKite(heartbeat_s=0.2) as fake:
        fake.add_instrument(INFY, "INFY")

        async def live(resume: str | None = None) -> Any:
            return await live_session(
                settings, SmaCross(PARAMS), engine, fake.settings(), fake.credentials(),
                ["INFY"], resume=resume, flush_interval_s=None,
            )  # fmt: skip

        owner = await live()
        task = asyncio.create_task(owner.run())
        await fake.ticker.wait_subscribed([INFY], "full")
        second = await live(resume=owner.status.run_id)
        heard = len(fake.requests)
        with pytest.raises(RunOwned, match=f"owned by pid {os.getpid()} on host "):
            await second.run()
        assert [r.route for r in fake.requests[heard:]] == []
        owner.request_stop()
        await asyncio.wait_for(task, 20)
    (run,) = [r for r in stored(tmp_path / "live.db") if r.mode == "live"]
    assert run.status == "stopped" and run.lease_owner is None
