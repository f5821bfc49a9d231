"""Shared fixtures. Real data lives in ../shared beside the repository (never copied here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log import RootHandler
from tests.support.paths import BANKNIFTY, KITE_MOCKS, NIFTY, NSE_DIR, ROOT, SHARED

__all__ = ["BANKNIFTY", "KITE_MOCKS", "NIFTY", "NSE_DIR", "ROOT", "SHARED"]


@pytest.fixture(scope="session")
def nifty_path() -> Path:
    if not NIFTY.exists():
        pytest.fail(f"{NIFTY} is missing: the shared data must sit at ../shared beside the repo")
    return NIFTY


@pytest.fixture(autouse=True)
def _root_logging_stays_per_test() -> Iterator[None]:
    """``configure_logging`` (every CLI call) sets the root logger's handler and level for the
    process; take them off again, so one test's set-up does not reach the next (a fake Kite
    server's INFO lines, say, on the terminal between tests)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _trader_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``$TRADER_HOME`` (``config.paths``): a command run without
    ``--db`` stores there, never in the user's real home, and no test sees another's runs."""
    home = tmp_path_factory.mktemp("trader-home")
    monkeypatch.setenv("TRADER_HOME", str(home))
    monkeypatch.delenv("TRADER_DB", raising=False)
    return home


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    """One real PostgreSQL server for the session (see tests/support/postgres.py). Without the
    dev dependencies the tests fail; where the server itself cannot start (no shared memory,
    a sandbox refusing ``initdb``), the PostgreSQL half of each test is skipped, saying why."""
    from tests.support.postgres import PostgresServer, ServerUnavailable

    try:
        server = PostgresServer(tmp_path_factory.mktemp("pg") / "data")
    except ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL server can start on this machine: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, then a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'run.db'}"
    return request.getfixturevalue("postgres").new_database()
