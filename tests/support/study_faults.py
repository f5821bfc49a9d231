"""Faults injected into walk-forward study units (test doubles: never in the packages).

``kill_worker_once`` runs in a Ray worker: the first time any unit reaches it, it leaves a
marker file and kills its own process — a worker lost mid-fold — so Ray must retry the unit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.study.tasks import backtest_unit


def kill_worker_once(
    spec: dict[str, Any], fold: dict[str, Any], point: int, store: str, *trained: dict[str, Any]
) -> dict[str, Any]:
    marker = Path(store) / "killed-once"
    if fold["index"] == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(17)  # no cleanup, no exception: the worker process is simply gone
    return backtest_unit(spec, fold, point, store, *trained)


def fail_fold_one(
    spec: dict[str, Any], fold: dict[str, Any], point: int, store: str, *trained: dict[str, Any]
) -> dict[str, Any]:
    """A unit that raises (bad input a fold meets late): not retried, it fails the study."""
    if fold["index"] == 1:
        raise ValueError("fold 1: injected bad input")
    return backtest_unit(spec, fold, point, store, *trained)
