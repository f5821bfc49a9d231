"""A run remembers how it was started, so ``trader paper --resume RUN_ID`` needs only the id.

The options that decide what a run trades — its feed and data, dates, interval, universe,
strategy, parameters, model, capital, costs, slippage, how files are read — are stored with the
run (``RunRow.launch_json``). A resume takes them from there. A flag given on the resume that
differs from the stored value is refused, naming each one (status 2): the run would otherwise
continue on other data or settings than it started with. Options about this process only
(``--port``, ``--json``, ``--report``, ``--db``) are free to change, and ``--speed`` is
remembered but may be changed (a resumed replay keeps its pace unless told otherwise).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from app.errors import UserError

#: the options a paper run is started with and resumed from (argparse ``dest`` names)
RECORDED = (
    "feed", "data", "kite_symbols", "symbols", "days", "seed", "strategy", "param", "model",
    "interval", "start_date", "end_date", "capital", "costs", "slippage_bps", "no_square_off",
    "date_format", "epoch_unit", "max_bar_move_pct", "outliers", "warmup_days",
)  # fmt: skip
#: recorded, used when not given, but a given value wins: how fast, not what, is traded
FREE = ("speed",)
DATES = ("start_date", "end_date")


def _stored(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def launch_record(args: argparse.Namespace) -> dict[str, Any]:
    """The recorded options of ``args`` as JSON values."""
    names = (*RECORDED, *FREE)
    return {name: _stored(getattr(args, name)) for name in names if hasattr(args, name)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def apply_launch(args: argparse.Namespace, command: str) -> None:
    """Fill ``args`` of ``trader COMMAND --resume RUN_ID`` from the run's stored options;
    refuse flags given with other values. A run stored before runs recorded their options
    keeps the old rule: the flags must be given again (the resume check names what differs)."""
    from app.cli import build_parser
    from app.commands.runs import read_database
    from engine.store.queries import load_launch

    stored = load_launch(read_database(args.db), args.resume)
    if stored is None:
        return
    defaults = vars(build_parser().parse_args([command]))
    differ = []
    for name, value in stored.items():
        given = _stored(getattr(args, name, None))
        if given != _stored(defaults.get(name)) and name in FREE:
            continue  # given on this resume: it wins
        if given != _stored(defaults.get(name)) and given != value:
            differ.append(f"{_flag(name)} {given!r} (the run has {value!r})")
        setattr(args, name, date.fromisoformat(value) if name in DATES and value else value)
    if differ:
        raise UserError(
            f"run {args.resume} was started with other options: {'; '.join(differ)}. A run "
            f"continues as it started: resume with the id alone (trader {command} --resume "
            f"{args.resume})"
        )
