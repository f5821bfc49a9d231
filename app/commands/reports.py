"""``trader report RUN``: the self-contained HTML report of a stored run (``app.report``).

A run stores its trades and equity but not its bars, so the per-symbol price charts need the
bar files again (``--data``): they are read with the run's own interval, session hours and
data settings, cut to the run's period, and the report says when their fingerprint is not the
run's (other files, or the same files changed since).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from app.commands.runs import DB_HELP
from engine.store.database import open_database


def register(sub: Any) -> None:
    report = sub.add_parser("report", help="self-contained HTML report of a stored run")
    report.add_argument("run_id")
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.add_argument(
        "--data",
        action="append",
        metavar="PATH",
        help="the run's bar files (repeatable), for price charts with entries and exits",
    )
    report.add_argument("--db", help=DB_HELP)
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from app.report import render_report
    from engine.store.queries import load_equity, load_run

    engine = open_database(args.db, create=False)
    run = load_run(engine, args.run_id)
    ts, equity = load_equity(engine, args.run_id)
    bars, label = (None, None) if not args.data else _run_bars(run, args.data, ts)
    args.out.write_text(render_report(run, ts, equity, bars, label), encoding="utf-8")
    print(f"report: {args.out}")
    return 0


def _run_bars(run: dict[str, Any], paths: list[str], ts: Any) -> tuple[Any, str]:
    """The bar files read as the run read them (its interval, hours and data settings), within
    its period; the label says when they are not the bars the run had (another fingerprint —
    which covers the files and the run's ``--start-date`` / ``--end-date``)."""
    from config.sessions import epoch_ns
    from config.settings import EngineSettings
    from engine.data.loader import load_bars
    from engine.events import ts_to_ist

    settings = EngineSettings.model_validate(run["config"]["settings"])

    def load(start: Any, end: Any) -> Any:
        return load_bars(
            paths, settings.interval, start, end, session=settings.session.times,
            data=settings.data,
        )  # fmt: skip

    first = ts_to_ist(int(ts[0])).date() if len(ts) else None
    last = ts_to_ist(int(ts[-1])).date() if len(ts) else None
    # the fingerprint covers --start-date / --end-date as given: try the run's first and last
    # bar days for each, then neither
    tries = dict.fromkeys([(first, last), (None, last), (first, None), (None, None)])
    for start, end in tries:
        bars = load(start, end)
        if bars.fingerprint == run["data_fingerprint"]:
            break
    label = ", ".join(paths)
    if bars.fingerprint != run["data_fingerprint"]:
        label += f" (fingerprint {bars.fingerprint}: not the run's data)"
    if len(ts):
        stamps = epoch_ns(bars.frame["ts"])
        frame = bars.frame[(stamps >= int(ts[0])) & (stamps <= int(ts[-1]))]
        bars = dataclasses.replace(bars, frame=frame)
    return bars, label
