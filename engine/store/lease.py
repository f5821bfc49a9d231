"""One owner per run: a lease in the run's row, taken atomically, renewed by a heartbeat.

Two processes writing one run store every fill twice, and two live processes send every order
twice. So a session owns its run through the ``lease_*`` columns of ``runs``:

- a new run is inserted with its lease taken (nobody else knows the run id yet);
- a resume takes the lease with one conditional ``UPDATE … WHERE lease_owner = <seen> AND
  lease_heartbeat_at = <seen>``: of two processes racing for the same run, the database lets
  exactly one change the row (SQLite serialises writers; PostgreSQL re-checks the condition on
  the row the winner committed), and the other finds it changed and is refused — naming the
  owner's pid, host and since when. This happens before anything talks to a broker;
- the owner renews ``lease_heartbeat_at`` (at least every third of its timeout, and with every
  commit), and every write of the run's state is conditional on still owning it: a process that
  lost its lease — it stalled past the timeout and someone took over — finds out at its next
  write, which then does not happen, and stops;
- a clean stop releases the lease in the transaction that stores the run's final status.

A lease is free to take when it was released, when its heartbeat is older than the timeout its
owner declared (a kill -9, a lost machine), or at once when the owner's pid no longer exists on
this very host. Times come from the database's clock, so hosts sharing a PostgreSQL server
need not agree on the time.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Update,
    bindparam,
    cast,
    extract,
    func,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from engine.store.retry import RetryPolicy, retry_sync
from engine.store.schema import RunRow

#: a lease whose heartbeat is older than this many seconds may be taken over (the default)
DEFAULT_LEASE_TIMEOUT_S = 30.0


class RunOwned(ValueError):
    """Another live process owns the run (a ValueError: the CLI's bad-input status, 2)."""


class LeaseLost(RuntimeError):
    """This process no longer owns its run: another took it over; nothing more was written."""


def db_now(engine: Engine | Connection) -> ColumnElement[float]:
    """The database server's clock as UTC epoch seconds (a SQL expression, evaluated each time
    a statement holding it runs; another backend gets this process's clock)."""
    name = engine.dialect.name
    if name == "sqlite":
        return (func.julianday("now") - 2440587.5) * 86400.0
    if name == "postgresql":
        return cast(extract("epoch", func.clock_timestamp()), Float)
    return bindparam("lease_now", type_=Float, callable_=time.time)


def iso(epoch_s: float | None) -> str:
    """Epoch seconds as an ISO UTC time for messages ("-" if unknown)."""
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


LEASE_COLUMNS = (
    RunRow.status,
    RunRow.lease_owner,
    RunRow.lease_pid,
    RunRow.lease_host,
    RunRow.lease_acquired_at,
    RunRow.lease_heartbeat_at,
    RunRow.lease_timeout_s,
)


@dataclass(frozen=True)
class LeaseView:
    """A run's lease as read at ``now`` (database clock): who holds it and whether it counts."""

    run_id: str
    status: str
    owner: str | None
    pid: int | None
    host: str | None
    acquired_at: float | None
    heartbeat_at: float | None
    timeout_s: float | None
    now: float

    @classmethod
    def from_row(cls, run_id: str, row: Any, now: float) -> LeaseView:
        return cls(
            run_id, row.status, row.lease_owner, row.lease_pid, row.lease_host,
            row.lease_acquired_at, row.lease_heartbeat_at, row.lease_timeout_s, float(now),
        )  # fmt: skip

    @property
    def age_s(self) -> float:
        """Seconds since the last heartbeat (infinite if there never was one)."""
        return float("inf") if self.heartbeat_at is None else self.now - self.heartbeat_at

    @property
    def state(self) -> str:
        """``free`` (released or never taken), ``expired`` (no heartbeat within the owner's
        timeout), ``orphaned`` (the owner's pid is gone from this host) or ``held``."""
        if self.owner is None:
            return "free"
        if self.age_s > (self.timeout_s or DEFAULT_LEASE_TIMEOUT_S):
            return "expired"
        if self.host == socket.gethostname() and self.pid is not None and not pid_alive(self.pid):
            return "orphaned"
        return "held"

    @property
    def effective_status(self) -> str:
        """The stored status, except that a ``running`` run nobody is running is ``stale``:
        killed (SIGKILL, a SIGTERM without a handler, a lost machine) before it could say so."""
        if self.status == "running" and self.state != "held":
            return "stale"
        return self.status

    def owner_text(self) -> str:
        age = "never" if self.heartbeat_at is None else f"{self.age_s:.1f}s ago"
        return (
            f"pid {self.pid} on host {self.host} since {iso(self.acquired_at)} "
            f"(last heartbeat {age}, lease timeout {self.timeout_s or DEFAULT_LEASE_TIMEOUT_S:g}s)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "host": self.host,
            "acquired_at": iso(self.acquired_at) if self.acquired_at is not None else None,
            "heartbeat_age_s": None if self.heartbeat_at is None else round(self.age_s, 3),
            "timeout_s": self.timeout_s,
        }


def read_lease(conn: Connection, run_id: str) -> LeaseView | None:
    """The run's lease now, or None if there is no such run."""
    row = conn.execute(
        select(*LEASE_COLUMNS, db_now(conn).label("now")).where(RunRow.run_id == run_id)
    ).first()
    return None if row is None else LeaseView.from_row(run_id, row, row.now)


class RunLease:
    """This process's claim on one run (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"lease timeout must be positive, not {timeout_s}")
        self.engine = engine
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.owner = uuid.uuid4().hex
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.held = False
        self.lost = False
        self.lost_reason = ""
        self._now = db_now(engine)
        self._guards: dict[tuple[str, ...], Update] = {}

    @property
    def heartbeat_interval_s(self) -> float:
        """Renew well inside the timeout: two missed beats still leave the lease held."""
        return self.timeout_s / 3

    def claim_values(self, conn: Connection) -> dict[str, Any]:
        """The lease columns of a row this process takes (a new run's INSERT, a takeover)."""
        now = db_now(conn)
        return {
            "lease_owner": self.owner, "lease_pid": self.pid, "lease_host": self.host,
            "lease_acquired_at": now, "lease_heartbeat_at": now, "lease_timeout_s": self.timeout_s,
        }  # fmt: skip

    def acquire(self) -> None:
        """Take an existing run's lease, or raise ``RunOwned`` naming who holds it."""

        def attempt() -> bool:
            with self.engine.connect() as conn:
                seen = read_lease(conn, self.run_id)
            if seen is None:
                raise ValueError(f"no run {self.run_id!r} in {self.engine.url}")
            if seen.state == "held":
                raise RunOwned(self._owned_message(seen))
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(RunRow)
                    .where(
                        RunRow.run_id == self.run_id,
                        _same(RunRow.lease_owner, seen.owner),
                        _same(RunRow.lease_heartbeat_at, seen.heartbeat_at),
                    )
                    .values(**self.claim_values(conn))
                )
                return bool(taken.rowcount == 1)

        if not retry_sync(attempt, self.retry, f"taking the lease of run {self.run_id}"):
            # another starter changed the row between our read and our write: it won
            with self.engine.connect() as conn:
                winner = read_lease(conn, self.run_id)
            raise RunOwned(self._owned_message(winner))
        self.held = True

    def _owned_message(self, view: LeaseView | None) -> str:
        who = view.owner_text() if view is not None else "another process"
        return (
            f"run {self.run_id} is owned by {who}; only one process may run it at a time. "
            f"Stop that process first (or, if it is gone, resume again once its lease has "
            f"expired)"
        )

    def guard(self, conn: Connection, **values: Any) -> None:
        """Update the run's row in the caller's transaction — only if this process still owns
        it, renewing the heartbeat; otherwise raise ``LeaseLost`` (the transaction then rolls
        back: nothing of it is written)."""
        keys = tuple(values)
        statement = self._guards.get(keys)
        if statement is None:  # built once per set of columns: a daemon runs this every bar
            statement = self._guards[keys] = (
                update(RunRow)
                .where(
                    RunRow.run_id == bindparam("lease_run"),
                    RunRow.lease_owner == bindparam("lease_me"),
                )
                .values(lease_heartbeat_at=self._now, **{k: bindparam(f"v_{k}") for k in keys})
            )
        params = {f"v_{k}": v for k, v in values.items()}
        done = conn.execute(statement, {"lease_run": self.run_id, "lease_me": self.owner, **params})
        if done.rowcount != 1:
            self.lost = True
            self.lost_reason = self.lost_message(conn)
            raise LeaseLost(self.lost_reason)

    def lost_message(self, conn: Connection) -> str:
        now = read_lease(conn, self.run_id)
        who = now.owner_text() if now is not None and now.owner else "nobody"
        return (
            f"run {self.run_id}: this process (pid {self.pid} on {self.host}) lost its lease; "
            f"the run is now owned by {who}. Stopped without writing anything more"
        )

    def heartbeat(self) -> None:
        """Renew the lease in its own short transaction (between bars, when nothing commits)."""
        with self.engine.begin() as conn:
            self.guard(conn)

    def release_values(self) -> dict[str, Any]:
        """Columns that hand the run back (with the final status, in one transaction); pid,
        host and times stay as a record of the last owner."""
        return {"lease_owner": None}

    def release(self) -> None:
        """Hand the run back without changing anything else (a resume that did not start)."""
        if not self.held or self.lost:
            return
        with self.engine.begin() as conn:
            self.guard(conn, **self.release_values())
        self.held = False


def _same(column: Any, value: Any) -> ColumnElement[bool]:
    """``column = value`` that also matches NULL to None (a lease never taken)."""
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]
