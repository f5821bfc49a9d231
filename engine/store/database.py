"""Engine creation and schema set-up for a database URL or a bare SQLite path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from config.paths import default_database_url
from engine.store.schema import Base


class NoDatabase(ValueError):
    """A lookup named a database that does not exist; looking never creates one."""


def database_url(value: str | None) -> str:
    """A SQLAlchemy URL, or a file path meaning SQLite there; none: the default database
    (``$TRADER_DB``, else ``trader.db`` in ``$TRADER_HOME``; ``config.paths``)."""
    if not value:
        return default_database_url()
    return value if "://" in value else f"sqlite:///{Path(value)}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (absolute), None for other databases or in-memory SQLite."""
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///")).expanduser().resolve()


def shown_url(url: str) -> str:
    """The URL as a person reads it: a SQLite file by its absolute path."""
    file = sqlite_file(url)
    return f"sqlite:///{file}" if file is not None else url


def open_database(url: str | None, *, create: bool = True) -> Engine:
    """The database at ``url`` with the current schema. ``create=False`` is for lookups
    (``runs show``, reports): a SQLite file that does not exist is refused (``NoDatabase``)
    instead of being created empty."""
    url = database_url(url)
    file = sqlite_file(url)
    if file is not None and not file.exists():
        if not create:
            raise NoDatabase(f"no database at {shown_url(url)} (no run stored there yet)")
        file.parent.mkdir(parents=True, exist_ok=True)
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
