"""Options and output shared by the commands that run the pipeline (backtest, demo, paper, live):
settings and strategy from flags, the result printed, stored and exported."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands.data_options import data_overrides
from app.readable import format_metric, metric_label, pct
from engine.session import SessionResult

if TYPE_CHECKING:
    from engine.data.loader import LoadedBars


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_run_options(p: argparse.ArgumentParser, strategy: str = "sma_cross") -> None:
    """Options shared by every command that runs the pipeline (backtest, demo, paper, live).
    Options without a value of their own fall back to the settings (``config/settings.py``,
    ``TRADER_*`` environment); their help names the default that applies."""
    from config.settings import PROFILES, CostSettings, EngineSettings, ExecutionSettings

    capital = EngineSettings.model_fields["capital"].default
    live_capital = PROFILES["live"]["capital"]
    p.add_argument("--strategy", default=strategy, help="strategy name (trader strategies)")
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V",
        help="strategy parameter, repeatable (default: the strategy's defaults, "
        "trader strategies lists them)",
    )  # fmt: skip
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="CKPT",
        help="model file for --strategy model (repeat to average an ensemble; default: none)",
    )
    p.add_argument("--interval", default="5minute", help="bar interval")
    p.add_argument(
        "--start-date", type=iso_date, help="first day, YYYY-MM-DD (default: the data's first)"
    )
    p.add_argument(
        "--end-date", type=iso_date, help="last day, YYYY-MM-DD (default: the data's last)"
    )
    p.add_argument(
        "--capital", type=float,
        help=f"starting capital in rupees (default: {capital:,.0f}; live {live_capital:,.0f})",
    )  # fmt: skip
    p.add_argument(
        "--costs", choices=["zerodha", "none"],
        help=f"charges model (default: {CostSettings.model_fields['model'].default}, Zerodha "
        "intraday equity)",
    )  # fmt: skip
    p.add_argument(
        "--slippage-bps", type=float,
        help="adverse slippage on market and stop fills, basis points "
        f"(default: {ExecutionSettings.model_fields['slippage_bps'].default:g})",
    )  # fmt: skip
    p.add_argument(
        "--no-square-off", action="store_true",
        help="hold positions overnight (default: square off intraday at 15:20 IST)",
    )  # fmt: skip
    p.add_argument(
        "--db", help="database URL or SQLite path (default: $TRADER_DB, else trader.db in "
        "$TRADER_HOME; trader paths shows it)",
    )  # fmt: skip
    p.add_argument("--no-db", action="store_true", help="do not store the run")
    p.add_argument(
        "--json", dest="json_out", type=Path, help="write the result as JSON here (default: no)"
    )
    p.add_argument(
        "--report", type=Path, help="write a self-contained HTML report here (default: no)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
        help="where warm-up history is downloaded (resumable; default: $TRADER_HOME/cache/history)",
    )


def history_cache(args: argparse.Namespace) -> Path:
    from config.paths import history_cache_dir

    return Path(args.history_cache) if args.history_cache else history_cache_dir()


def settings_from_args(args: argparse.Namespace, profile: str = "backtest") -> Any:
    from config.settings import load_settings

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
    return load_settings(profile, **overrides)


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
    if recorder is not None:
        from app.commands.launch import launch_record

        recorder.launch = launch_record(args)
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
    print_result(args, result, bars, label)
    return 0


def print_result(
    args: argparse.Namespace,
    result: SessionResult,
    bars: LoadedBars | None = None,
    data_label: str | None = None,
) -> None:
    """What every mode prints and exports at the end: which data a model saw (a WARNING when
    the run is not out-of-sample), metrics, the model's calls, the run id, and ``--json`` /
    ``--report`` when asked for (one result shape for every mode; ``bars``, when at hand,
    give the report its price charts)."""
    from app.overlap import describe

    model_data = result.extra.get("model_data")
    if model_data is not None:
        print("\n".join(describe(model_data)))
    print(format_metrics(result.metrics, result))
    calls = result.extra.get("model_calls")
    if calls:
        print(format_model_calls(calls))
    probabilities = result.extra.get("model_probabilities")
    if probabilities:
        print(format_probability_range(probabilities))
    if result.run_id:
        from engine.store.database import database_url, shown_url

        print(f"run_id: {result.run_id}  ({show_command(args, result.run_id)})")
        print(f"stored in {shown_url(database_url(getattr(args, 'db', None)))}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result.as_json(), indent=2))
        print(f"json: {args.json_out}")
    if args.report:
        from app.report import write_report_for_result

        write_report_for_result(result, args.report, bars, data_label)
        print(f"report: {args.report}")


#: the metrics every run prints, in this order (labels and formats: ``app.readable``)
SUMMARY_METRICS = (
    "total_return", "cagr", "sharpe", "sharpe_bar", "sortino", "max_drawdown", "trade_count",
    "win_rate", "profit_factor", "avg_trade", "total_pnl", "exposure", "turnover",
)  # fmt: skip


def costs_line(metrics: dict[str, Any]) -> str:
    """Charges and slippage side by side: slippage is already inside the fill prices (so in
    the P&L), charges are paid on top; a trader wants both to judge a strategy's edge."""
    costs = format_metric("total_costs", metrics.get("total_costs", 0.0))
    if "total_slippage" not in metrics:
        return f"{costs} charges (slippage not recorded for this run)"
    slippage = format_metric("total_slippage", metrics["total_slippage"])
    return f"{costs} charges + {slippage} slippage (inside fill prices)"


def metric_lines(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) for the summary metrics as a person reads them."""
    rows = []
    for name in SUMMARY_METRICS:
        value = format_metric(name, metrics.get(name))
        if name == "max_drawdown" and "max_drawdown_days" in metrics:
            value += f" ({format_metric('max_drawdown_days', metrics['max_drawdown_days'])})"
        rows.append((metric_label(name), value))
    rows.append(("costs", costs_line(metrics)))
    return rows


def show_command(args: argparse.Namespace, run_id: str) -> str:
    """The next step as it must be typed: ``--db`` named when the run is not in the default
    database."""
    db = getattr(args, "db", None)
    return f"trader runs show {run_id}" + (f" --db {db}" if db else "")


def format_metrics(metrics: dict[str, Any], result: Any) -> str:
    rows = [
        *metric_lines(metrics),
        (
            "bars",
            f"{result.bars_processed:,} slices, {result.symbol_bars:,} symbol-bars "
            f"in {result.elapsed_s:.2f}s",
        ),
        ("orders / denials", f"{result.orders:,} / {result.denials:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_probability_range(probabilities: dict[str, Any]) -> str:
    """Quantiles of P(BUY) and P(SELL) on the backtest period, and how often the run's
    ``entry_threshold`` was reached: thresholds chosen from what the model says, not guessed."""
    names = {0.0: "min", 0.5: "median", 1.0: "max"}
    labels = [names.get(q, pct(q, 0)) for q in probabilities["quantiles"]]
    lines = [f"model probabilities on this period ({probabilities['bars']:,} predicted bars):"]
    for side in ("BUY", "SELL"):
        values = probabilities[side]
        shown = " · ".join(f"{label} {v:.3f}" for label, v in zip(labels, values, strict=True))
        lines.append(f"  P({side:<4}) {shown}")
    if "entry_threshold" in probabilities:
        lines.append(
            f"  entry_threshold {probabilities['entry_threshold']:.2f} reached on "
            f"{pct(probabilities['entry_threshold_reached'])} of them"
        )
    return "\n".join(lines)


def format_model_calls(calls: dict[str, Any]) -> str:
    """The model's calls against realised labels: accuracy overall and per class."""
    per_class = calls.get("per_class_accuracy", {})
    parts = ", ".join(f"{k} {pct(v, 1)}" for k, v in per_class.items() if v is not None)
    support = calls.get("support", {})
    total = sum(support.values())
    majority = max(support.values()) / total if total else float("nan")
    return (
        f"model calls       accuracy {pct(calls.get('accuracy', 0), 1)} on "
        f"{calls.get('scored', 0):,} labelled bars ({parts}); "
        f"always-the-most-common-class would score {pct(majority, 1)}"
    )
