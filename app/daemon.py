"""The paper/live daemon process: one session, signal handling, the optional HTTP API.

SIGINT/SIGTERM ask the session to stop between bars, so the last bar's transaction is always
complete; the process exits 0 and the run is stored as "stopped" (resumable). A handler error
halts the run: it is logged, stored as "failed" (resumable after a fix) and the process exits
with status 1 (``app.errors``) — it does not stay up, so a supervisor sees the failure.
``--json`` and ``--report`` are written from the session's result as a backtest's are.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from app.commands.run_options import print_result
from app.overlap import add_to_result
from app.runners.paper import trading_session
from engine.session import TradingSession
from engine.store.database import open_database

log = structlog.get_logger()


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
    finally:
        if runner is not None:
            await runner.cleanup()
    if session.recorder is not None:
        add_to_result(result, session.recorder.model_data)
    status = session.status
    outcome = "finished" if status.finished else f"stopped (resume with --resume {status.run_id})"
    print(f"{status.mode} session {outcome} after {status.bars_processed} bars")
    print_result(args, result)
    return 0


def run_daemon(
    args: argparse.Namespace, prepared: tuple[Any, Any], bars: Any, label: str,
    speed: float | None,
) -> int:  # fmt: skip
    settings, strategy = prepared
    print(bars.quality)
    session = trading_session(
        bars, strategy, settings, open_database(args.db), speed=speed, resume=args.resume
    )
    log.info("daemon.start", feed=label, strategy=strategy.name, run_id=session.status.run_id)
    return asyncio.run(serve_session(args, session))
