"""The paper/live daemon process: one session, signal handling, the optional HTTP API.

SIGINT/SIGTERM ask the session to stop between bars, so the last bar's transaction is always
complete; the process exits 0 and the run is stored as "stopped" (resumable). A handler error
halts the run: it is logged, stored as "failed" (resumable after a fix) and the process exits
with status 1 (``app.errors``) — it does not stay up, so a supervisor sees the failure.
``--json`` and ``--report`` are written from the session's result as a backtest's are.

One process owns a run at a time (``engine.store.lease``). A second ``--resume`` of a run
whose owner is alive is refused before it touches anything, naming the owner's pid, host and
since when (status 2, like any run that cannot be resumed as asked); a daemon that finds its
run taken over stops without writing (status 1), as does one whose database stayed unwritable
for ``--db-wait`` seconds (shorter refusals pause new entries and are waited out).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, TypedDict

import structlog

from app.commands.run_options import print_result
from app.errors import EXIT_FAILED
from app.overlap import add_to_result
from app.runners.paper import trading_session
from engine.session import TradingSession
from engine.store.database import open_database
from engine.store.lease import DEFAULT_LEASE_TIMEOUT_S, LeaseLost
from engine.store.retry import DEFAULT_STORE_WAIT_S, StoreUnavailable

log = structlog.get_logger()


def add_store_options(p: argparse.ArgumentParser) -> None:
    """How a daemon holds its run and waits for its database (paper and live)."""
    p.add_argument(
        "--lease-timeout",
        type=_positive,
        default=DEFAULT_LEASE_TIMEOUT_S,
        metavar="SECONDS",
        help="after this long without a heartbeat (the process was killed) another process may "
        f"take the run over with --resume (default {DEFAULT_LEASE_TIMEOUT_S:g}; at once on the "
        "same host once the process is gone)",
    )
    p.add_argument(
        "--db-wait",
        type=_positive,
        default=DEFAULT_STORE_WAIT_S,
        metavar="SECONDS",
        help="how long to wait, new entries paused, for a database that refuses writes "
        f"(locked, restarting) before failing (default {DEFAULT_STORE_WAIT_S:g})",
    )


class StoreOptions(TypedDict):
    """``add_store_options``' values as ``trading_session`` / ``live_session`` keywords."""

    lease_timeout_s: float
    store_wait_s: float


def store_options(args: argparse.Namespace) -> StoreOptions:
    return {"lease_timeout_s": args.lease_timeout, "store_wait_s": args.db_wait}


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


async def serve_session(args: argparse.Namespace, session: TradingSession) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, session.request_stop)
    runner = None
    if args.port:
        from app.http_api import start_http_api

        runner = await start_http_api(session, args.host, args.port)
    try:
        result = await session.run()
    except (LeaseLost, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if runner is not None:
            await runner.cleanup()
    if session.recorder is not None:
        add_to_result(result, session.recorder.model_data)
    status = session.status
    db = f" --db {args.db}" if getattr(args, "db", None) else ""
    outcome = (
        "finished"
        if status.finished
        else f"stopped (resume: trader {status.mode} --resume {status.run_id}{db})"
    )
    print(f"{status.mode} session {outcome} after {status.bars_processed} bars")
    print_result(args, result)
    return 0


def run_daemon(
    args: argparse.Namespace, prepared: tuple[Any, Any], bars: Any, label: str,
    speed: float | None, launch: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """``launch``: how the run was started (``app/commands/launch.py``), stored with it."""
    settings, strategy = prepared
    print(bars.quality)
    session = trading_session(
        bars, strategy, settings, open_database(args.db), speed=speed, resume=args.resume,
        launch=launch, **store_options(args),
    )  # fmt: skip
    log.info("daemon.start", feed=label, strategy=strategy.name, run_id=session.status.run_id)
    return asyncio.run(serve_session(args, session))
