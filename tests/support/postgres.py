"""A real PostgreSQL server for the tests that must hold on PostgreSQL as on SQLite.

``pgserver`` (a dev dependency) ships the server's binaries in its wheel and runs ``initdb`` and
``pg_ctl`` in a folder of ours (as another user when the tests run as root); psycopg 3 talks to
it over its Unix socket. One server per test session, a fresh database per test.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text


class ServerUnavailable(RuntimeError):
    """pgserver is installed but no server could be started here."""


class PostgresServer:
    def __init__(self, folder: Path) -> None:
        try:
            import pgserver
        except ImportError as exc:  # a missing dev dependency must fail, not skip
            raise RuntimeError(
                "the PostgreSQL tests need pgserver and psycopg: pip install -e '.[dev]'"
            ) from exc
        try:
            self.server: Any = pgserver.get_server(folder, cleanup_mode="stop")
        except Exception as exc:  # initdb/pg_ctl failing: the machine, not the code under test
            raise ServerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.base = make_url(self.server.get_uri()).set(drivername="postgresql+psycopg")

    def new_database(self) -> str:
        """A fresh, empty database on the server; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.base.set(database=name).render_as_string(hide_password=False)

    def version(self, url: str) -> str:
        engine = create_engine(url)
        with engine.connect() as conn:
            version = str(conn.execute(text("SELECT version()")).scalar_one())
        engine.dispose()
        return version

    def stop(self) -> None:
        self.server.cleanup()
