"""Options and output shared by the commands that run the pipeline (backtest, demo, paper, live):
settings and strategy from flags, the result printed, stored and exported."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

from app.commands.data_options import data_overrides
from engine.session import SessionResult


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline (backtest, demo, paper)."""
    p.add_argument("--strategy", default="sma_cross", help="strategy name (default sma_cross)")
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="strategy parameter, repeatable"
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="CKPT",
        help="model file for --strategy model (repeat to average an ensemble)",
    )
    p.add_argument("--interval", default="5minute", help="bar interval (default 5minute)")
    p.add_argument("--start-date", type=iso_date)
    p.add_argument("--end-date", type=iso_date)
    p.add_argument("--capital", type=float)
    p.add_argument("--costs", choices=["zerodha", "none"])
    p.add_argument("--slippage-bps", type=float)
    p.add_argument("--no-square-off", action="store_true")
    p.add_argument("--db", help="SQLAlchemy URL or SQLite path (default sqlite:///trader.db)")
    p.add_argument("--no-db", action="store_true", help="do not store the run")
    p.add_argument("--json", dest="json_out", type=Path, help="write the result as JSON here")
    p.add_argument("--report", type=Path, help="write a self-contained HTML report here")
    p.add_argument("--no-progress", action="store_true")
    # also accepted after the sub-command (the global flags come before it)
    p.add_argument(
        "--log-json", action="store_true", default=argparse.SUPPRESS, help="JSON log lines"
    )


def add_warmup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--warmup-days",
        type=int,
        default=7,
        help="Kite feed: calendar days of history replayed through the features and "
        "strategy before the first live bar (0: start cold)",
    )
    p.add_argument(
        "--history-cache",
        default="runs/history-cache",
        help="where warm-up history is downloaded (resumable)",
    )


def settings_from_args(args: argparse.Namespace, profile: str = "backtest") -> Any:
    from config.settings import load_settings

    return load_settings(profile, **settings_overrides(args))


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_settings`` overrides the run flags give (a walk-forward study hands these to
    every fold's backtest, so each runs with the settings ``trader backtest`` would use)."""
    overrides: dict[str, Any] = {"interval": args.interval}
    if args.capital is not None:
        overrides["capital"] = args.capital
    if args.costs is not None:
        overrides["costs"] = {"model": args.costs}
    if args.slippage_bps is not None:
        overrides["execution"] = {"slippage_bps": args.slippage_bps}
    if args.no_square_off:
        overrides["session"] = {"square_off_enabled": False}
    if data := data_overrides(args):
        overrides["data"] = data
    return overrides


def prepare_run(args: argparse.Namespace, profile: str = "backtest") -> tuple[Any, Any]:
    """Settings and strategy from the args — checked before any data is read."""
    from app.wiring import check_strategy
    from strategies.registry import make_strategy, parse_params

    params = parse_params(args.param)
    if args.model:
        params["model"] = ",".join(args.model)
    settings, strategy = settings_from_args(args, profile), make_strategy(args.strategy, params)
    check_strategy(strategy)
    return settings, strategy


def run_and_report(
    args: argparse.Namespace, prepared: tuple[Any, Any], bars: Any, label: str
) -> int:
    """Backtest ``bars`` with the prepared settings and strategy; print, store, export."""
    import structlog

    from app.runners.backtest import run_backtest
    from engine.store.database import open_database
    from engine.store.recorder import RunRecorder

    settings, strategy = prepared
    recorder = None if args.no_db else RunRecorder(open_database(args.db), settings.mode)
    log = structlog.get_logger()
    log.info(
        "backtest.data",
        data=label,
        strategy=strategy.name,
        interval=settings.interval,
        symbols=len(bars.symbols),
        bars=len(bars.frame),
    )
    result = asyncio.run(
        run_backtest(bars, strategy, settings, recorder, progress=not args.no_progress)
    )
    print(bars.quality)
    print_result(args, result)
    return 0


def print_result(args: argparse.Namespace, result: SessionResult) -> None:
    """What every mode prints and exports at the end: which data a model saw (a WARNING when
    the run is not out-of-sample), metrics, the model's calls, the run id, and ``--json`` /
    ``--report`` when asked for (one result shape for every mode)."""
    from app.overlap import describe

    model_data = result.extra.get("model_data")
    if model_data is not None:
        print("\n".join(describe(model_data)))
    print(format_metrics(result.metrics, result))
    calls = result.extra.get("model_calls")
    if calls:
        print(format_model_calls(calls))
    if result.run_id:
        print(f"run_id: {result.run_id}  (trader runs show {result.run_id})")
    if args.json_out:
        args.json_out.write_text(json.dumps(result.as_json(), indent=2))
        print(f"json: {args.json_out}")
    if args.report:
        from app.report import write_report_for_result

        write_report_for_result(result, args.report)
        print(f"report: {args.report}")


def format_metrics(metrics: dict[str, float], result: Any) -> str:
    rows = [
        ("total return", f"{metrics.get('total_return', 0):.2%}"),
        ("CAGR", f"{metrics.get('cagr', 0):.2%}"),
        ("Sharpe (daily)", f"{metrics.get('sharpe', 0):.2f}"),
        ("Sharpe (bar)", f"{metrics.get('sharpe_bar', 0):.2f}"),
        ("Sortino", f"{metrics.get('sortino', 0):.2f}"),
        (
            "max drawdown",
            f"{metrics.get('max_drawdown', 0):.2%}"
            f" ({metrics.get('max_drawdown_days', 0):.1f} days)",
        ),
        ("trades", f"{int(metrics.get('trade_count', 0))}"),
        ("win rate", f"{metrics.get('win_rate', 0):.1%}"),
        ("profit factor", f"{metrics.get('profit_factor', 0):.2f}"),
        ("avg trade", f"{metrics.get('avg_trade', 0):,.2f}"),
        ("total P&L", f"{metrics.get('total_pnl', 0):,.2f}"),
        ("exposure", f"{metrics.get('exposure', 0):.1%}"),
        ("turnover", f"{metrics.get('turnover', 0):.1f}x"),
        ("costs", f"{metrics.get('total_costs', 0):,.2f}"),
        (
            "bars",
            f"{result.bars_processed} slices, {result.symbol_bars} symbol-bars "
            f"in {result.elapsed_s:.2f}s",
        ),
        ("orders / denials", f"{result.orders} / {result.denials}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_model_calls(calls: dict[str, Any]) -> str:
    """The model's calls against realised labels: accuracy overall and per class."""
    per_class = calls.get("per_class_accuracy", {})
    parts = ", ".join(f"{k} {v:.1%}" for k, v in per_class.items() if v is not None)
    support = calls.get("support", {})
    total = sum(support.values())
    majority = max(support.values()) / total if total else float("nan")
    return (
        f"model calls       accuracy {calls.get('accuracy', 0):.1%} on {calls.get('scored', 0)} "
        f"labelled bars ({parts}); always-the-most-common-class would score {majority:.1%}"
    )
