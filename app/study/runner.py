"""A walk-forward study from its spec to stored results.

1. Plan: the bars of ``--data`` (in the run's hours and date range) give the folds
   (``models.folds.plan_folds``), purged by the label horizon of a model strategy.
2. Directory store (``--out``): ``study.json`` holds the study id, spec and folds. If it is
   already there the study is resumed — only with the same parameters (refused otherwise,
   naming each that differs) and the same data — and finished units are read back, not rerun.
3. Database: the study row is written before any unit runs, a fold row as each unit finishes,
   the stitched results at the end; an interrupted or failed study keeps its finished folds.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app.errors import UserError
from app.study import tasks
from app.study.executors import UnitFn, Work
from app.study.spec import STORE_FILE, StudySpec
from app.study.stitch import stitch
from engine.store import studies
from models.folds import Fold, parse_duration, plan_folds


@dataclass
class StudyPlan:
    study_id: str
    spec: StudySpec
    folds: list[Fold]
    store: Path
    data_fingerprint: str
    resumed: bool = False


def plan_study(spec: StudySpec, store: Path) -> StudyPlan:
    """Folds from the data, and the directory store checked for a study to resume."""
    from config.sessions import epoch_ns
    from config.settings import EngineSettings
    from engine.data.loader import load_bars
    from models.folds import Duration

    train = parse_duration(spec.train, "--train")
    test = parse_duration(spec.test, "--test")
    step: Duration | None = None if spec.step is None else parse_duration(spec.step, "--step")
    settings = EngineSettings.model_validate(spec.settings)
    start = _date(spec.start_date)
    end = _date(spec.end_date)
    bars = load_bars(
        spec.data, spec.interval, start, end, session=settings.session.times, data=settings.data
    )
    folds = plan_folds(
        epoch_ns(bars.frame["ts"]), train, test, step, expanding=spec.expanding,
        horizon=spec.horizon, start=start, end=end,
    )  # fmt: skip
    saved = store / STORE_FILE
    if saved.exists():
        stored = json.loads(saved.read_text())
        differ = spec.differences(stored["spec"])
        if differ:
            raise UserError(
                f"--out {store} holds study {stored['study_id']} started with other parameters "
                f"({'; '.join(differ)}): resume it with the same ones, or use another --out"
            )
        if stored["data_fingerprint"] != bars.fingerprint:
            raise UserError(
                f"--out {store} holds study {stored['study_id']}, run on other data (fingerprint "
                f"{stored['data_fingerprint'][:12]}, now {bars.fingerprint[:12]}): use another "
                "--out"
            )
        return StudyPlan(stored["study_id"], spec, folds, store, bars.fingerprint, resumed=True)
    study_id = "wf-" + uuid.uuid4().hex[:10]
    store.mkdir(parents=True, exist_ok=True)
    tasks.write_json(
        saved,
        {
            "study_id": study_id,
            "spec": spec.to_dict(),
            "folds": [f.to_dict() for f in folds],
            "data_fingerprint": bars.fingerprint,
        },
    )
    return StudyPlan(study_id, spec, folds, store, bars.fingerprint)


def _date(text: str | None) -> Any:
    from datetime import date

    return None if text is None else date.fromisoformat(text)


@dataclass
class StudyOutcome:
    study_id: str
    units: list[dict[str, Any]]  # by point, then fold
    results: dict[str, Any]  # per point: stitched
    computed: list[tuple[int, int]] = field(default_factory=list)  # units run this time


def run_study(
    plan: StudyPlan,
    executor: Any,
    engine: Engine,
    train_fn: UnitFn | None = None,
    backtest_fn: UnitFn | None = None,
) -> StudyOutcome:
    """Run what is not done yet, persist each unit as it finishes, stitch, store."""
    from config.sessions import parse_interval
    from config.settings import EngineSettings
    from engine.version import code_version

    spec = plan.spec
    store = str(plan.store)
    fold_dicts = [f.to_dict() for f in plan.folds]
    by_index = {f["index"]: f for f in fold_dicts}
    studies.start_study(
        engine, plan.study_id, strategy=spec.strategy, spec=spec.to_dict(), folds=fold_dicts,
        out_dir=store, code_version=code_version(), data_fingerprint=plan.data_fingerprint,
    )  # fmt: skip
    computed: list[tuple[int, int]] = []

    def persist(unit: dict[str, Any]) -> None:
        computed.append((unit["fold"], unit["point"]))
        _save_unit(engine, plan.study_id, by_index[unit["fold"]], unit)

    def done_unit(fold: int, point: int) -> dict[str, Any] | None:
        return tasks.read_done(tasks.unit_file(store, fold, point))

    work = Work(
        spec=spec.to_dict(), folds=fold_dicts, seeds=spec.seed_list(), points=len(spec.points()),
        store=store, trains=spec.trains_models,
        done_training=lambda f, s: tasks.read_done(tasks.seed_dir(store, f, s) / tasks.DONE_FILE),
        done_unit=done_unit, on_result=persist, train_fn=train_fn or tasks.train_unit,
        backtest_fn=backtest_fn or tasks.backtest_unit,
    )  # fmt: skip
    try:
        executor.run(work)
    except KeyboardInterrupt:
        studies.finish_study(engine, plan.study_id, "interrupted", error="interrupted")
        raise
    except Exception as exc:
        studies.finish_study(engine, plan.study_id, "failed", error=str(exc))
        raise
    settings = EngineSettings.model_validate(spec.settings)
    minutes = parse_interval(spec.interval, settings.session.times)
    units, results = [], {}
    for point in range(len(spec.points())):
        mine = []
        for fold in fold_dicts:
            unit = done_unit(fold["index"], point)
            if unit is None:
                raise RuntimeError(f"fold {fold['index']} point {point} finished without a result")
            if (fold["index"], point) not in computed:  # read back (resumed): make sure it's stored
                _save_unit(engine, plan.study_id, fold, unit)
            mine.append(unit)
        units += mine
        results[str(point)] = {
            "params": spec.points()[point],
            "strategy_config": strategy_config(spec, point),
            "trains_models": spec.trains_models,
            **stitch(mine, settings.capital, minutes, settings.session.times),
        }
    studies.finish_study(engine, plan.study_id, "finished", results=results)
    return StudyOutcome(plan.study_id, units, results, computed)


def strategy_config(spec: StudySpec, point: int) -> dict[str, Any]:
    """The strategy configuration a point traded, as runs store it (``Strategy.config()``):
    what a promotion matches paper runs against. A model study's has no model — each fold
    traded its own."""
    from strategies.registry import make_strategy

    params = dict(spec.points()[point])
    if spec.trains_models:
        params["model"] = ""
    return dict(make_strategy(spec.strategy, params).config())


def _save_unit(engine: Engine, study_id: str, fold: dict[str, Any], unit: dict[str, Any]) -> None:
    """The fold row: backtest metrics, model scores (without the per-bar signal arrays, which
    stay in the directory store), the models and the data each saw."""
    model = unit.get("model")
    metrics: dict[str, Any] = {
        "backtest": unit["metrics"],
        "trades": len(unit["trades_pnl"]),
        # measured by the backtest from the models' provenance (app/overlap.py): 0 when the
        # fold's models never saw its test window, None without a model
        "in_sample_fraction": unit.get("in_sample_fraction"),
    }
    if model is not None:
        metrics["model"] = {k: v for k, v in model.items() if k not in ("signal", "forward_return")}
        metrics["models"] = [
            {k: m[k] for k in ("seed", "model_hash", "data_seen", "path", "inner")}
            for m in unit["models"]
        ]
    data_seen = "; ".join(f"seed {m['seed']}: {m['data_seen']}" for m in unit["models"]) or None
    equity = {k: unit["equity"][k] for k in ("ts", "equity")}
    studies.save_fold(
        engine, study_id, fold, unit["point"], unit["params"], data_seen, metrics, equity
    )
