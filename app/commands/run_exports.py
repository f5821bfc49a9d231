"""``trader runs trades|fills|equity RUN_ID [--csv OUT]``: a stored run's rows for a
spreadsheet. CSV keeps full precision (it is data, not display); times are IST with their
offset (``2021-03-01T09:20:00+05:30``), which spreadsheets and pandas read as they are. Without
``--csv`` the table goes to stdout as CSV, so ``| head`` and redirection work too."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from app.errors import UserError

KINDS = {
    "trades": "a run's closed trades (entry and exit times and prices, P&L, costs)",
    "fills": "a run's fills (time, side, quantity, price, charges, slippage)",
    "equity": "a run's equity curve (one row per bar)",
}


def register(rsub: Any, db_help: str) -> None:
    for kind, what in KINDS.items():
        p = rsub.add_parser(kind, help=f"{what} as CSV")
        p.add_argument("run_id")
        p.add_argument("--csv", type=Path, metavar="OUT", help="write here (default: stdout)")
        p.add_argument("--db", help=db_help)
        p.set_defaults(func=cmd_export, export=kind)


def rows_of(kind: str, engine: Any, run_id: str) -> list[dict[str, Any]]:
    from engine.events import ts_to_ist
    from engine.store.queries import load_equity, load_fills, load_run

    run = load_run(engine, run_id)  # names a missing run as lookups do
    if kind == "trades":
        return list(run["trades"])
    if kind == "fills":
        return load_fills(engine, run_id)
    ts, equity = load_equity(engine, run_id)
    return [
        {"time": ts_to_ist(int(t)).isoformat(), "equity": float(e)}
        for t, e in zip(ts.tolist(), equity.tolist(), strict=True)
    ]


def write_csv(rows: list[dict[str, Any]], out: TextIO, columns: list[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


#: the header written even for a run with no rows, so a spreadsheet import stays the same
COLUMNS = {
    "trades": ["symbol", "side", "qty", "entry_time", "entry_price", "exit_time", "exit_price",
               "pnl", "costs", "exit_reason"],
    "fills": ["time", "symbol", "side", "qty", "price", "costs", "slippage", "order_id",
              "reason"],
    "equity": ["time", "equity"],
}  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    from app.commands.runs import read_database

    rows = rows_of(args.export, read_database(args.db), args.run_id)
    if args.csv is None:
        write_csv(rows, sys.stdout, COLUMNS[args.export])
        return 0
    if args.csv.is_dir():
        raise UserError(f"--csv {args.csv} is a directory; give a file name")
    with args.csv.open("w", newline="", encoding="utf-8") as out:
        write_csv(rows, out, COLUMNS[args.export])
    print(f"{len(rows):,} {args.export} rows → {args.csv}", file=sys.stderr)
    return 0
