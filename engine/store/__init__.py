"""Persistence: SQLAlchemy 2.x; SQLite file by default, any URL (PostgreSQL) by ``--db``."""
