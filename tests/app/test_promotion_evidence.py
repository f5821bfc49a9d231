"""Promotion on honest evidence, as a new user meets it on the command line (issue 11 item 6).

The probe that once APPROVED a promotion: a ``--speed max`` replay of the 2021 files with
``--costs none`` counted as "paper 247 days". It must count for no session, the promotion must
be refused saying why (the replay, the costs), and ``trader live`` must refuse. Forward paper
trading on (the fake) Kite's live prices counts the sessions it traded by the wall clock."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select, text

from app.cli import main
from config.settings import PromotionSettings
from engine.store.database import open_database
from engine.store.schema import KITE_FEED, REPLAY_FEED, PromotionRow, RunRow
from risk.promotion import evaluate
from tests.support import stored_runs
from tests.support.kite_paper import kite_paper_run

STRATEGY = ["--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8"]
PERIOD = ["--interval", "15minute", "--end-date", "2021-03-31", "--costs", "none"]


def _runs(db: str) -> dict[str, RunRow]:
    with open_database(db).connect() as conn:
        return {r.mode: r for r in conn.execute(select(RunRow)).all()}


def test_a_max_speed_replay_without_costs_is_not_paper_evidence(tmp_path, nifty_path, capsys):
    db = str(tmp_path / "probe.db")
    replay = ["paper", "--feed", f"replay:{nifty_path}", "--speed", "max", *STRATEGY, *PERIOD]
    assert main([*replay, "--db", db]) == 0
    assert "replaying stored bars: research, not paper evidence" in capsys.readouterr().out
    assert main(["backtest", "--data", str(nifty_path), *STRATEGY, *PERIOD, "--db", db]) == 0
    runs = _runs(db)
    paper, backtest = runs["paper"], runs["backtest"]
    # the store says what the run was: a replay, which traded no session by the wall clock
    assert (paper.feed_kind, backtest.feed_kind) == (REPLAY_FEED, REPLAY_FEED)
    assert paper.sessions_json is None and paper.bars_processed > 1000
    capsys.readouterr()

    promote = ["promote", "--to", "live", "--backtest", backtest.run_id, "--paper", paper.run_id]
    assert main([*promote, "--db", db]) == 2
    out = capsys.readouterr().out
    assert "REFUSED" in out and "APPROVED" not in out
    assert "paper on live prices 0 sessions" in out
    assert f"paper run {paper.run_id} replayed stored bars (feed replay)" in out
    assert "research, not paper evidence" in out and "`trader paper --feed kite`" in out
    assert f"backtest {backtest.run_id} was run with --costs none (costs.model=none)" in out
    with open_database(db).connect() as conn:
        (row,) = conn.execute(select(PromotionRow)).all()
    evidence = json.loads(row.evidence_json)
    assert not row.approved and evidence["paper"]["trading_days"] == 0

    live = ["live", *STRATEGY, "--symbols", "INFY", "--db", db, "--i-understand-this-is-live"]
    assert main(live) == 2
    assert "no approved promotion" in capsys.readouterr().err


async def test_paper_on_kite_prices_counts_the_sessions_it_traded(tmp_path):
    """Three trading days through the fake Kite, the wall clock following the ticks: three
    sessions recorded, each once, however many bars each day had."""
    engine = open_database(str(tmp_path / "kite.db"))
    run_id = await kite_paper_run(engine, sessions=3)
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()
    assert run.feed_kind == KITE_FEED and run.mode == "paper"
    assert json.loads(run.sessions_json) == ["2024-06-03", "2024-06-04", "2024-06-05"]
    assert run.bars_processed > 3 * 10  # sessions, not bars
    report = tmp_path / "kite.html"
    assert main(["report", run_id, "--out", str(report), "--db", str(tmp_path / "kite.db")]) == 0
    page = report.read_text()
    assert "<td>kite · 3 sessions traded by the wall clock</td>" in page
    assert "price charts need the run's bars" in page  # none stored for a live feed


async def test_a_live_feed_whose_clock_is_not_on_the_bars_day_counts_no_session(tmp_path):
    """The wall-clock rule itself: bars of a day the clock does not read (history pushed
    through the feed days later) trade no session."""
    engine = open_database(str(tmp_path / "late.db"))
    run_id = await kite_paper_run(engine, sessions=2, clock_lag_days=3)
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()
    assert run.feed_kind == KITE_FEED and run.sessions_json is None


async def test_a_resumed_kite_paper_run_keeps_the_sessions_it_traded(tmp_path):
    engine = open_database(str(tmp_path / "resume.db"))
    run_id = await kite_paper_run(engine, sessions=2)
    again = await kite_paper_run(engine, sessions=1, first_day=date(2024, 6, 5), resume=run_id)
    assert again == run_id
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()
    assert json.loads(run.sessions_json) == ["2024-06-03", "2024-06-04", "2024-06-05"]


async def test_a_database_from_before_feeds_gains_the_columns_in_place(tmp_path):
    """Runs stored before feeds were recorded: the columns are added on open, nothing stored
    is lost, and such a paper run is refused as paper evidence, saying why."""
    db = str(tmp_path / "old.db")
    engine, bt, paper = await stored_runs(db, 2)
    with engine.begin() as conn:  # the table as an older version made it
        for column in ("feed_kind", "sessions_json", "model_calls_json"):
            conn.execute(text(f"ALTER TABLE runs DROP COLUMN {column}"))
    engine.dispose()
    reopened = open_database(db)
    with reopened.connect() as conn:
        rows = {r.run_id: r for r in conn.execute(select(RunRow)).all()}
    assert rows.keys() == {bt, paper} and rows[paper].feed_kind is None
    assert rows[paper].bars_processed > 0
    result = evaluate(reopened, bt, [paper], PromotionSettings())
    assert any(
        f"paper run {paper} records no feed (stored before runs recorded theirs)" in r
        for r in result.reasons
    )


async def test_promote_approves_forward_paper_sessions_on_the_command_line(
    tmp_path, monkeypatch, capsys
):
    """The gate is a setting (``promotion.min_paper_days``, here 3 through the environment);
    the CLI says which sessions each paper run traded."""
    db = tmp_path / "ok.db"
    engine, bt, _ = await stored_runs(db, 1)
    paper = await kite_paper_run(engine, sessions=3)
    capsys.readouterr()
    monkeypatch.setenv("TRADER_PROMOTION__MIN_PAPER_DAYS", "3")
    promote = ["promote", "--to", "live", "--backtest", bt, "--paper", paper, "--db", str(db)]
    assert main(promote) == 0
    out = capsys.readouterr().out
    assert "APPROVED" in out and "paper on live prices 3 sessions" in out
    assert f"paper {paper}: feed kite, 3 sessions traded, 2024-06-03 → 2024-06-05" in out
