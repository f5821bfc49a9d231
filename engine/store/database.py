"""Engine creation and schema set-up for a database URL or a bare SQLite path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from engine.store.schema import Base

DEFAULT_DB = "sqlite:///trader.db"


def database_url(value: str | None) -> str:
    """A SQLAlchemy URL, or a file path meaning SQLite there."""
    if not value:
        return DEFAULT_DB
    return value if "://" in value else f"sqlite:///{Path(value)}"


def open_database(url: str | None) -> Engine:
    url = database_url(url)
    # a server may drop idle connections (restart, failover): test each one before use
    options: dict[str, Any] = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        engine = create_engine(url, future=True, **options)
    except Exception as exc:  # a bad URL must read as a settings error, not a traceback
        raise ValueError(f"--db {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    for attempt in range(5):
        try:
            Base.metadata.create_all(engine)
            add_missing_columns(engine)
            break
        except (OperationalError, ProgrammingError, IntegrityError):
            # another process (the daemon, a `trader runs` reader) created a table or added a
            # column between our existence check and our DDL (SQLite: "already exists";
            # PostgreSQL: that, or a duplicate catalog row); look again
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    return engine


def add_missing_columns(engine: Engine) -> None:
    """Bring a database made by an older version up to date: new nullable columns are added in
    place (nothing stored is touched); anything else is refused with what to do."""
    existing = inspect(engine)
    for table in Base.metadata.sorted_tables:
        if not existing.has_table(table.name):
            continue
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise ValueError(
                    f"database {engine.url}: table {table.name} lacks column {column.name}, "
                    "which this version needs and cannot add to existing rows; use a new --db"
                )
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
