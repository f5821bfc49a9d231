"""Which database errors are worth waiting out, and how long to wait.

A paper or live daemon runs for weeks against a database it shares: a ``trader runs`` reader,
a backtest writing its rows in one transaction, a backup or a ``sqlite3`` shell can hold a SQLite
file's write lock for seconds, and a PostgreSQL server can drop connections on a restart or
abort a transaction as a serialization failure. None of these says anything about the run, so a
writer retries them with exponential backoff for a bounded time (``RetryPolicy.budget_s``);
anything else — a constraint violation, a missing table, a bad URL — is a bug or a
misconfiguration and fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

log = structlog.get_logger()

T = TypeVar("T")

#: PostgreSQL SQLSTATEs that a retry can succeed after: serialization failure, deadlock, lock
#: not available, admin/crash shutdown, "cannot connect now", too many connections
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
#: SQLite's words for another connection holding the lock the statement needs
SQLITE_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")

#: how long a daemon waits for a database that refuses writes before it gives up (seconds)
DEFAULT_STORE_WAIT_S = 120.0


class StoreUnavailable(RuntimeError):
    """The database refused writes for longer than the retry budget."""


def is_transient(exc: BaseException) -> bool:
    """True for errors that say "not now" rather than "never": a locked SQLite file, a dropped
    or refused PostgreSQL connection, a serialization failure or deadlock."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if type(orig).__module__.startswith("sqlite3"):
        text = str(orig).lower()
        return any(words in text for words in SQLITE_BUSY_WORDS)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code:
        return code in TRANSIENT_SQLSTATES or str(code).startswith("08")  # 08: connection
    # a server-side driver error without a SQLSTATE is a connection that failed or went away
    return isinstance(exc, OperationalError)


def describe(exc: BaseException) -> str:
    """The driver's one-line message (SQLAlchemy's adds the statement and a link)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``first_s`` doubling up to ``max_s`` between attempts, for at
    most ``budget_s`` seconds in all."""

    budget_s: float = DEFAULT_STORE_WAIT_S
    first_s: float = 0.05
    max_s: float = 2.0

    def delays(self) -> Iterator[float]:
        """The pauses before each retry; ends when the budget is spent (the caller gives up)."""
        deadline = time.monotonic() + self.budget_s
        delay = self.first_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield min(delay, left)
            delay = min(delay * 2, self.max_s)


def retry_sync(write: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    """Run ``write`` (one transaction) until it succeeds, retrying transient errors with
    backoff (blocking: for set-up and the final write, when there is nothing else to run)."""
    delays: Iterator[float] | None = None
    while True:
        try:
            return write()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            delays = delays or policy.delays()
            delay = next(delays, None)
            if delay is None:
                raise StoreUnavailable(
                    f"{what}: the database refused writes for {policy.budget_s:g}s "
                    f"({describe(exc)})"
                ) from exc
            log.warning("store.retry", what=what, error=describe(exc), wait_s=round(delay, 3))
            time.sleep(delay)
