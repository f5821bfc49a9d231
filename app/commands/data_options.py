"""The flags that say how bar files are read (settings ``data.*``; README "Data input"), for
every command that reads bar files. Light on imports: ``features`` and ``train`` register these
for every invocation of the CLI."""

from __future__ import annotations

import argparse
from typing import Any


def add_data_options(p: argparse.ArgumentParser) -> None:
    """How bar files are read (settings ``data.*``; README "Data input"): for every command that
    reads bar files."""
    p.add_argument(
        "--date-format",
        metavar="FMT",
        help="text timestamps: ISO 8601 only by default (YYYY-MM-DD HH:MM[:SS][+05:30]); "
        "dayfirst (DD/MM/YYYY …), monthfirst (MM/DD/YYYY …) or a strptime format such as "
        "'%%d/%%m/%%Y %%H:%%M'",
    )
    p.add_argument(
        "--epoch-unit",
        choices=["s", "ms", "us", "ns"],
        help="numeric timestamps: the epoch unit (default: detected from the magnitude)",
    )
    p.add_argument(
        "--max-bar-move-pct",
        type=float,
        metavar="PCT",
        help="bad-print rule: a bar this far from both agreeing neighbours of its session is "
        "an outlier (default 50)",
    )
    p.add_argument(
        "--outliers",
        choices=["drop", "refuse"],
        help="drop and count bad prints (default) or refuse the file naming the row",
    )


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``data.*`` settings from the flags of ``add_data_options`` that were given."""
    flags = {
        "date_format": "date_format",
        "epoch_unit": "epoch_unit",
        "max_bar_move_pct": "max_bar_move_pct",
        "outlier_action": "outliers",
    }
    return {
        key: getattr(args, flag)
        for key, flag in flags.items()
        if getattr(args, flag, None) is not None
    }


def data_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``load_settings`` overrides for a command that reads bars but runs nothing."""
    data = data_overrides(args)
    return {"data": data} if data else {}
