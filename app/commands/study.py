"""``trader study walkforward`` and ``trader studies list|show`` (registered by app/cli.py).

Heavy imports (torch, Ray, the backtest) happen inside the handlers."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from app.commands.data_options import add_data_options
from app.commands.models import add_training_options
from app.commands.run_options import iso_date
from app.errors import UserError


def register(sub: Any) -> None:
    study = sub.add_parser("study", help="research studies (walk-forward)")
    ssub = study.add_subparsers(dest="study_command", required=True)
    wf = ssub.add_parser(
        "walkforward",
        help="train per fold, backtest each fold out of sample, stitch the curve",
        description="Folds over --data: train on --train, purge, test on the next --test; "
        "the next fold moves --step (default --test). Each fold's backtest is `trader "
        "backtest` on its test window with its own models. Rerunning the same command "
        "resumes it.",
    )
    wf.add_argument("--data", action="append", required=True, metavar="PATH")
    wf.add_argument("--strategy", default="model", help="model (trained per fold) or sma_cross…")
    wf.add_argument("--train", required=True, metavar="DUR", help="training window: 2M, 6M, 10D…")
    wf.add_argument("--test", required=True, metavar="DUR", help="test window: 1M, 2W…")
    wf.add_argument("--step", metavar="DUR", help="fold step (default: --test)")
    wf.add_argument("--expanding", action="store_true", help="training windows grow from start")
    wf.add_argument("--seeds", type=int, default=1, help="models per fold, traded as ensemble")
    wf.add_argument("--param", action="append", default=[], metavar="K=V")
    wf.add_argument(
        "--grid", action="append", default=[], metavar="K=V1,V2", help="one point per value"
    )
    wf.add_argument("--interval", default="5minute")
    wf.add_argument("--start-date", type=iso_date)
    wf.add_argument("--end-date", type=iso_date)
    wf.add_argument("--capital", type=float)
    wf.add_argument("--costs", choices=["zerodha", "none"])
    wf.add_argument("--slippage-bps", type=float)
    wf.add_argument("--no-square-off", action="store_true")
    add_data_options(wf)
    add_training_options(wf)
    wf.add_argument("--db", help="SQLAlchemy URL or SQLite path (default sqlite:///trader.db)")
    wf.add_argument("--json", dest="json_out", type=Path, help="folds and stitched results")
    wf.add_argument("--report", type=Path, help="write the study's HTML report here")
    wf.add_argument(
        "--out", type=Path, help="directory store for models and fold results (every Ray "
        "worker must reach it; default runs/studies/<parameters hash>)",
    )  # fmt: skip
    wf.add_argument("--no-ray", action="store_true", help="run the folds here, one by one")
    wf.add_argument("--ray-address", metavar="ADDR", help="a Ray cluster (default: local Ray)")
    wf.set_defaults(func=cmd_walkforward)

    st = sub.add_parser("studies", help="stored studies")
    stsub = st.add_subparsers(dest="studies_command", required=True)
    ls = stsub.add_parser("list", help="studies, newest first")
    ls.add_argument("--db")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_list)
    show = stsub.add_parser("show", help="one study: folds, what each model saw, stitched")
    show.add_argument("study_id")
    show.add_argument("--db")
    show.add_argument("--json", action="store_true")
    show.add_argument("--report", type=Path, help="write the study's HTML report here")
    show.set_defaults(func=cmd_show)


def _training_dests() -> list[str]:
    probe = argparse.ArgumentParser(add_help=False)
    add_training_options(probe)
    return [a.dest for a in probe._actions]


def study_spec(args: argparse.Namespace) -> Any:
    """The spec from the flags, checked before any data is read."""
    from app.commands.run_options import settings_from_args
    from app.study.spec import StudySpec
    from strategies.registry import make_strategy, parse_params

    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: at least 1")
    params = parse_params(args.param)
    grid: dict[str, list[str]] = {}
    for item in args.grid:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise UserError(f"--grid {item!r} must look like name=value1,value2")
        grid[key.strip()] = choices
    if args.strategy == "model" and "model" in params:
        raise UserError("--param model=…: a walk-forward study trains each fold's own models")
    if args.strategy != "model" and args.seeds != 1:
        raise UserError(
            f"--seeds applies to --strategy model (trained per fold), not {args.strategy}"
        )
    settings = settings_from_args(args)
    spec = StudySpec(
        data=[str(Path(p).resolve()) for p in args.data], interval=args.interval,
        start_date=None if args.start_date is None else str(args.start_date),
        end_date=None if args.end_date is None else str(args.end_date),
        strategy=args.strategy, params=params, grid=grid, train=args.train, test=args.test,
        step=args.step, expanding=args.expanding, seeds=args.seeds,
        training={k: getattr(args, k) for k in _training_dests()},
        # what decides the folds' numbers; the promotion rules judge a study, not run it
        settings=settings.model_dump(mode="json", exclude={"promotion"}),
    )  # fmt: skip
    for point in spec.points():  # bad strategy parameters fail here, before any work
        probe = dict(point)
        if spec.trains_models:
            probe.setdefault("model", "unset.ckpt")
        make_strategy(args.strategy, probe)
    return spec


def cmd_walkforward(args: argparse.Namespace) -> int:
    from app.study.executors import RayExecutor, SequentialExecutor
    from app.study.runner import plan_study, run_study
    from engine.store.database import open_database

    spec = study_spec(args)
    if args.no_ray and args.ray_address:
        raise UserError("--no-ray and --ray-address contradict each other")
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()
    # absolute: Ray workers (other processes, other machines) find it whatever their cwd
    store = (args.out or Path("runs") / "studies" / digest[:12]).resolve()
    plan = plan_study(spec, store)
    for fold in plan.folds:
        print(fold.describe())
    if plan.resumed:
        print(f"resuming study {plan.study_id} from {store}: finished folds are not recomputed")
    executor: Any = SequentialExecutor() if args.no_ray else RayExecutor(args.ray_address)
    if args.no_ray:
        engine = open_database(args.db)
        outcome = run_study(plan, executor, engine)
    else:
        with executor.connected():  # an unreachable cluster is refused before anything is stored
            engine = open_database(args.db)
            outcome = run_study(plan, executor, engine)
    print(f"ran {len(outcome.computed)} fold units {executor.description}; store {store}")
    from engine.store.studies import load_study

    study = load_study(engine, outcome.study_id)
    print(format_study(study))
    if args.json_out:
        args.json_out.write_text(json.dumps(study_json(study), indent=2, default=_json_default))
        print(f"json: {args.json_out}")
    if args.report:
        _write_report(study, args.report)
    return 0


def _json_default(value: Any) -> Any:
    return str(value)


def study_json(study: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` shape: the study, its folds with their metrics, the stitched results
    (non-finite numbers as null)."""
    return _finite(study)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _write_report(study: dict[str, Any], path: Path) -> None:
    from app.study.report import write_study_report

    write_study_report(study, path)
    print(f"report: {path}")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.2%}"


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def format_study(study: dict[str, Any]) -> str:
    """Per fold (and grid point): windows, what the model saw, out-of-sample metrics; then the
    stitched curve's metrics."""
    lines = [
        f"study {study['study_id']}  {study['kind']}  strategy={study['strategy']}  "
        f"status={study['status']}  store={study['out_dir']}"
    ]
    head = (
        f"{'pt':>2} {'fold':>4} {'test window':<23} {'trades':>6} {'return':>8} {'sharpe':>7} "
        f"{'maxDD':>7} {'costs':>10} {'acc':>6} {'bal':>6} {'major':>6} {'logit':>6} "
        f"{'IC':>7} {'rankIC':>7}"
    )
    lines.append(head)
    for fold in study["folds"]:
        m = fold["metrics"]["backtest"]
        model = fold["metrics"].get("model")
        cells = ["-"] * 6
        if model is not None:
            calls, base, ic = model["calls"], model["baselines"], model["ic"]
            cells = [
                _num(calls.get("accuracy"), 3), _num(calls.get("balanced_accuracy"), 3),
                _num(base["majority"]["accuracy"], 3), _num(base["logistic"]["accuracy"], 3),
                _num(ic["ic"], 3), _num(ic["rank_ic"], 3),
            ]  # fmt: skip
        window = f"{fold['test_start']} → {fold['test_end']}"
        lines.append(
            f"{fold['point']:>2} {fold['fold']:>4} {window:<23} "
            f"{int(m.get('trade_count', 0)):>6} {_pct(m.get('total_return')):>8} "
            f"{_num(m.get('sharpe')):>7} {_pct(m.get('max_drawdown')):>7} "
            f"{m.get('total_costs', 0):>10,.2f} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6} "
            f"{cells[3]:>6} {cells[4]:>7} {cells[5]:>7}"
        )
        if fold["data_seen"]:
            lines.append(f"        model data (train {fold['train_start']} → {fold['train_last']} "
                         f"IST): {fold['data_seen']}")  # fmt: skip
    for point, res in (study.get("results") or {}).items():
        m = res["metrics"]
        lines.append(
            f"stitched out-of-sample (point {point}, {json.dumps(res['params'])}; "
            f"{res['chaining']}): return {_pct(m.get('total_return'))}, Sharpe "
            f"{_num(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, "
            f"{int(m.get('trade_count', 0))} trades, costs {m.get('total_costs', 0):,.2f}, "
            f"profitable folds {int(m['profitable_folds'])}/{int(m['folds'])}"
        )
        model = res.get("model")
        if model is not None:
            base = model["baselines"]
            lines.append(
                f"  model over all test windows: accuracy {_num(model['calls']['accuracy'], 3)} "
                f"(balanced {_num(model['calls']['balanced_accuracy'], 3)}) vs majority "
                f"{_num(base['majority']['accuracy'], 3)}, logistic "
                f"{_num(base['logistic']['accuracy'], 3)}; IC {_num(model['ic']['ic'], 3)}, "
                f"rank IC {_num(model['ic']['rank_ic'], 3)} on {model['ic']['pairs']} bars"
            )
    if study.get("error"):
        lines.append(f"error: {study['error']}")
    return "\n".join(lines)


def _lookup_engine(db: str | None) -> Any:
    from engine.store.database import open_database
    from engine.store.studies import missing_database

    reason = missing_database(db)
    if reason is not None:
        raise UserError(reason)
    return open_database(db)


def cmd_list(args: argparse.Namespace) -> int:
    from engine.store.studies import list_studies

    rows = list_studies(_lookup_engine(args.db), args.limit)
    if not rows:
        print("no studies stored")
        return 0
    print(f"{'study_id':<14} {'strategy':<10} {'status':<11} {'folds':>5} {'return':>8} "
          f"{'sharpe':>7}  created")  # fmt: skip
    for s in rows:
        first = (s["results"] or {}).get("0", {}).get("metrics", {})
        print(
            f"{s['study_id']:<14} {s['strategy']:<10} {s['status']:<11} "
            f"{len(s['planned_folds']):>5} {_pct(first.get('total_return')):>8} "
            f"{_num(first.get('sharpe')):>7}  {s['created_at'][:19]}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from engine.store.studies import load_study

    study = load_study(_lookup_engine(args.db), args.study_id)
    if args.json:
        print(json.dumps(study_json(study), indent=2, default=_json_default))
    else:
        print(format_study(study))
    if args.report:
        _write_report(study, args.report)
    return 0
