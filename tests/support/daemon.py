"""The paper daemon driven as a user drives it — a ``trader paper`` process — and its run read
back from the database (a SQLite path or any SQLAlchemy URL)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from engine.store.database import open_database
from engine.store.schema import EquityRow, FillRow, OrderRow, RunRow, TradeRow
from tests.support.paths import ROOT


def url_of(db: Path | str) -> str:
    """A SQLite file path or a URL, as ``--db`` takes it."""
    return str(db) if "://" in str(db) else f"sqlite:///{db}"


def run_rows(db: Path | str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a run stored, in a comparable form: orders, fills, equity and trades in order."""
    engine = open_database(url_of(db))
    with engine.connect() as conn:
        orders = conn.execute(
            select(
                OrderRow.order_id, OrderRow.intent_id, OrderRow.ts, OrderRow.symbol,
                OrderRow.side, OrderRow.qty, OrderRow.status,
            )
            .where(OrderRow.run_id == run_id)
            .order_by(OrderRow.seq)
        ).all()  # fmt: skip
        fills = conn.execute(
            select(
                FillRow.order_id, FillRow.ts, FillRow.symbol, FillRow.side, FillRow.qty,
                FillRow.price, FillRow.costs,
            )
            .where(FillRow.run_id == run_id)
            .order_by(FillRow.seq)
        ).all()  # fmt: skip
        equity = conn.execute(
            select(EquityRow.ts, EquityRow.equity)
            .where(EquityRow.run_id == run_id)
            .order_by(EquityRow.ts, EquityRow.id)
        ).all()
        trades = conn.execute(
            select(
                TradeRow.symbol, TradeRow.side, TradeRow.qty, TradeRow.entry_ts,
                TradeRow.entry_price, TradeRow.exit_ts, TradeRow.exit_price, TradeRow.pnl,
                TradeRow.costs, TradeRow.exit_reason,
            )
            .where(TradeRow.run_id == run_id)
            .order_by(TradeRow.id)
        ).all()  # fmt: skip
    engine.dispose()
    return {
        "orders": [tuple(r) for r in orders],
        "fills": [tuple(r) for r in fills],
        "equity": [tuple(r) for r in equity],
        "trades": [tuple(r) for r in trades],
    }


def stored(db: Path | str) -> list[Any]:
    """The runs rows, oldest first. A plain engine: a reader must not race the daemon's schema
    creation (and must not add columns behind its back)."""
    engine = create_engine(url_of(db))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(RunRow).order_by(RunRow.created_at)).all())
    finally:
        engine.dispose()


def trader(*args: str) -> subprocess.Popen[str]:
    """A ``trader`` process (``python -m app.cli``) with its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(
    db: Path | str,
    ready: Callable[[Any], bool],
    proc: subprocess.Popen[str] | None = None,
    timeout: float = 60.0,
) -> Any:
    """Poll the first stored run until ``ready(run)``; fails if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited {proc.returncode}:\n{out}\n{err}")
        try:
            found = stored(db)
        except Exception:  # no database or tables yet
            found = []
        if found and ready(found[0]):
            return found[0]
        time.sleep(0.02)
    raise AssertionError("the run never got there")
