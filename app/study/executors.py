"""Where a study's units run: one after another in this process (``--no-ray``), or as Ray tasks
— folds × seeds for training, folds × grid points for backtests — on an embedded local Ray
(default) or a cluster (``--ray-address``). Both call the same unit functions with the same
arguments, and every unit fixes its torch thread count, so the numbers are bit-identical.

A unit already in the directory store (a resumed study) is not run again: the driver reads it
back. A Ray worker killed mid-unit is retried (``max_retries``); a unit that raises is not
(the same input would raise again) and fails the study once the units already running have
finished and been kept.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.study.tasks import UnitFn

#: retries of a unit whose worker died (killed, out of memory, node lost)
WORKER_RETRIES = 3


@dataclass
class Work:
    """What the driver hands an executor: which units to run and how to report each."""

    spec: dict[str, Any]
    folds: list[dict[str, Any]]
    seeds: list[int]
    points: int
    store: str
    trains: bool
    done_training: Callable[[int, int], dict[str, Any] | None]  # (fold, seed) → stored result
    done_unit: Callable[[int, int], dict[str, Any] | None]  # (fold, point) → stored result
    on_result: Callable[[dict[str, Any]], None]  # a finished backtest unit (persist it)
    train_fn: UnitFn
    backtest_fn: UnitFn


class SequentialExecutor:
    """Fold by fold in this process."""

    description = "in this process (--no-ray)"

    def run(self, work: Work) -> None:
        for fold in work.folds:
            index = fold["index"]
            trained: list[dict[str, Any]] | None = None
            for point in range(work.points):
                if work.done_unit(index, point) is not None:
                    continue
                if trained is None:
                    trained = [
                        work.done_training(index, seed)
                        or work.train_fn(work.spec, fold, seed, work.store)
                        for seed in (work.seeds if work.trains else [])
                    ]
                work.on_result(work.backtest_fn(work.spec, fold, point, work.store, *trained))


def _call(fn: UnitFn, *args: Any) -> dict[str, Any]:
    return fn(*args)


class RayExecutor:
    """Ray tasks; ``address`` None starts an embedded local Ray sized to this machine (no
    dashboard, quiet) and shuts it down afterwards — unless Ray was already running in this
    process, which is then used and left running."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus or os.cpu_count() or 1
        self.description = f"on Ray at {address}" if address else "on local Ray"

    @contextmanager
    def connected(self) -> Iterator[RayExecutor]:
        import ray

        if self.address:
            _check_reachable(self.address)
        if ray.is_initialized():
            yield self
            return
        root = str(Path(__file__).resolve().parents[2])
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        }
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:  # workers import this checkout's packages, whatever is installed
                ray.init(
                    num_cpus=self.num_cpus,
                    runtime_env={"env_vars": {"PYTHONPATH": root}},
                    **options,
                )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise UserError(
                f"--ray-address {self.address}: cannot connect to Ray ({exc})"
            ) from None
        try:
            yield self
        finally:
            ray.shutdown()

    def run(self, work: Work) -> None:
        import ray

        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        remote = ray.remote(_call)
        train_task = remote.options(num_gpus=gpus, max_retries=WORKER_RETRIES)
        backtest_task = remote.options(max_retries=WORKER_RETRIES)
        pending: dict[Any, tuple[int, int]] = {}
        for fold in work.folds:
            index = fold["index"]
            todo = [p for p in range(work.points) if work.done_unit(index, p) is None]
            if not todo:
                continue
            models: list[Any] = []
            for seed in work.seeds if work.trains else []:
                stored = work.done_training(index, seed)
                models.append(
                    stored
                    if stored is not None
                    else train_task.remote(work.train_fn, work.spec, fold, seed, work.store)
                )
            for point in todo:
                ref = backtest_task.remote(
                    work.backtest_fn, work.spec, fold, point, work.store, *models
                )
                pending[ref] = (index, point)
        failure: BaseException | None = None
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                pending.pop(ref)
                try:
                    work.on_result(_unwrap(ray, ref))
                except Exception as exc:  # the others run on: what finishes is kept for a resume
                    failure = failure or exc
        finally:
            for ref in pending:  # only when interrupted
                ray.cancel(ref)
        if failure is not None:
            raise failure


def _unwrap(ray: Any, ref: Any) -> dict[str, Any]:
    """The task's value; a task's own exception is re-raised as itself (``ValueError`` from a
    bad input stays one), not as Ray's wrapper."""
    try:
        return dict(ray.get(ref))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        if isinstance(cause, Exception) and isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address nothing listens on before Ray spends a minute retrying it."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(
            f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); "
            "is the Ray head running (ray start --head)?"
        ) from None
