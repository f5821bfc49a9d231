"""``trader data check PATH…``: what a run would read from bar files, file by file — symbols,
rows read and kept, date range, the interval the timestamps show, rows dropped or repaired and
why — through the loader's own validation (``engine/data/inspect.py``). ``data download``
(Kite history) is registered under the same ``data`` command by ``app.commands.kite``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.commands.data_options import add_data_options, data_settings
from app.errors import EXIT_BAD_INPUT, EXIT_OK


def register(sub: Any) -> None:
    data = sub.add_parser("data", help="market data: check files, download from Kite")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="what a run would read from bar files (symbols, rows, dates, interval, drops)",
        description="Reads the files as backtest/paper/train do, with the same --date-format "
        "and bad-print rules, and reports each file; exit status 2 if any file is refused.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="bar files or directories")
    add_data_options(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_check)
    from app.commands.kite import add_download_parser

    add_download_parser(commands)


def cmd_check(args: argparse.Namespace) -> int:
    from app.readable import ist
    from config.settings import load_settings
    from engine.data.inspect import inspect_files
    from engine.data.quality import DROP_REASONS, NOTE_REASONS

    settings = load_settings(**data_settings(args))
    reports, skipped = inspect_files(args.paths, session=settings.session.times, data=settings.data)
    refused = [r for r in reports if r.problem.startswith("refused")]
    if args.json:
        rows: list[dict[str, Any]] = [
            {**vars(r), "first": None if r.first is None else r.first.isoformat(),
             "last": None if r.last is None else r.last.isoformat()}
            for r in reports
        ]  # fmt: skip
        print(json.dumps({"files": rows, "skipped": skipped}, indent=2))
        return EXIT_BAD_INPUT if refused else EXIT_OK
    hours = f"{settings.session.open:%H:%M}–{settings.session.close:%H:%M} IST"
    for r in reports:
        print(r.path)
        if r.problem:
            print(f"  {r.problem}")
            continue
        print(f"  symbols   {', '.join(r.symbols)} ({len(r.symbols)})")
        print(f"  rows      {r.rows_read:,} read, {r.bars_kept:,} bars kept (session {hours})")
        if r.first is not None and r.last is not None:
            print(f"  dates     {ist(r.first)} → {ist(r.last)} ({r.sessions:,} sessions)")
        interval = "-" if r.interval_minutes is None else f"{r.interval_minutes} minute"
        print(f"  interval  {interval} bars as stored (runs resample to their --interval)")
        for reason, count in r.dropped.items():
            print(f"  dropped   {count:>9,} {reason}: {DROP_REASONS.get(reason, '')}")
        for reason, count in r.notes.items():
            print(f"  repaired  {count:>9,} {reason}: {NOTE_REASONS.get(reason, '')}")
    for entry in skipped:
        print(f"skipped {entry}")
    read = [r for r in reports if not r.problem]
    symbols = sorted({s for r in read for s in r.symbols})
    print(
        f"{len(read)} of {len(reports)} file(s) readable: {len(symbols)} symbol(s), "
        f"{sum(r.bars_kept for r in read):,} bars"
        + (f"; {len(refused)} refused" if refused else "")
    )
    return EXIT_BAD_INPUT if refused else EXIT_OK
