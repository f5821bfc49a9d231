"""The paper/live daemon process: one session, signal handling, the optional HTTP API.

SIGINT/SIGTERM ask the session to stop between bars, so the last bar's transaction is always
complete; the process exits 0 and the run is stored as "stopped" (resumable). A handler error
halts trading and is logged; the run is stored as "failed" and can be resumed after a fix.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from app.runners.paper import PaperSession
from engine.store.database import open_database

log = structlog.get_logger()


async def serve_session(session: PaperSession, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, session.request_stop)
    runner = None
    if port:
        from app.http_api import start_http_api

        runner = await start_http_api(session, host, port)
    try:
        status = await session.run()
    finally:
        if runner is not None:
            await runner.cleanup()
    outcome = "finished" if status.finished else f"stopped (resume with --resume {status.run_id})"
    print(f"run_id: {status.run_id}  bars: {status.bars_processed}  {outcome}")
    return 0


def run_daemon(
    args: argparse.Namespace, prepared: tuple[Any, Any], bars: Any, label: str,
    speed: float | None,
) -> int:  # fmt: skip
    settings, strategy = prepared
    print(bars.quality)
    session = PaperSession(
        bars, strategy, settings, open_database(args.db), speed=speed, resume=args.resume
    )
    log.info("daemon.start", feed=label, strategy=strategy.name, run_id=session.status.run_id)
    return asyncio.run(serve_session(session, args.host, args.port))
