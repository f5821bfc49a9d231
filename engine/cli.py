"""The ``trader`` command line.

Every user-facing failure is a one-line ``error: ...`` on stderr with exit status 2 (bad input
or settings) or 1 (a run that failed); tracebacks are for ``--debug`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from config.settings import SettingsError
from engine.data.quality import DataError

#: modules that add their own sub-commands with ``register(subparsers)``
COMMAND_MODULES = (
    "engine.runs_commands",
    "engine.features.commands",
    "models.commands",
    "brokers.kite.commands",
)


class UserError(Exception):
    """Raised by commands for a plain message to the user (exit status 2)."""


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

    overrides: dict[str, Any] = {"interval": args.interval}
    if args.capital is not None:
        overrides["capital"] = args.capital
    if args.costs is not None:
        overrides["costs"] = {"model": args.costs}
    if args.slippage_bps is not None:
        overrides["execution"] = {"slippage_bps": args.slippage_bps}
    if args.no_square_off:
        overrides["session"] = {"square_off_enabled": False}
    return load_settings(profile, **overrides)


def prepare_run(args: argparse.Namespace, profile: str = "backtest") -> tuple[Any, Any]:
    """Settings and strategy from the args — checked before any data is read."""
    from strategies.registry import make_strategy, parse_params

    params = parse_params(args.param)
    if args.model:
        params["model"] = ",".join(args.model)
    return settings_from_args(args, profile), make_strategy(args.strategy, params)


def run_and_report(
    args: argparse.Namespace, prepared: tuple[Any, Any], bars: Any, label: str
) -> int:
    """Backtest ``bars`` with the prepared settings and strategy; print, store, export."""
    import structlog

    from engine.runners.backtest import run_backtest
    from engine.store.database import open_database
    from engine.store.recorder import RunRecorder

    settings, strategy = prepared
    recorder = None if args.no_db else RunRecorder(open_database(args.db), settings.mode)
    log = structlog.get_logger()
    log.info(
        "backtest.start",
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
    print(format_metrics(result.metrics, result))
    calls = result.strategy_report.get("model_calls")
    if calls:
        print(format_model_calls(calls))
    if result.run_id:
        print(f"run_id: {result.run_id}  (trader runs show {result.run_id})")
    if args.json_out:
        args.json_out.write_text(json.dumps(result.as_json(), indent=2))
    if args.report:
        from engine.report import write_report_for_result

        write_report_for_result(result, settings, args.report, bars.quality)
        print(f"report: {args.report}")
    return 0


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


def cmd_backtest(args: argparse.Namespace) -> int:
    from engine.data.loader import load_bars

    prepared = prepare_run(args)
    bars = load_bars(args.data, args.interval, args.start_date, args.end_date)
    return run_and_report(args, prepared, bars, ", ".join(args.data))


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(args)


def cmd_paper(args: argparse.Namespace) -> int:
    from engine.runners.paper import parse_speed

    speed = parse_speed(args.speed)
    prepared = prepare_run(args, profile="paper")
    if args.feed == "kite":
        return _paper_on_kite(args, prepared)
    bars, label = _feed_bars(args)
    from engine.daemon import run_daemon

    return run_daemon(args, prepared, bars, label, speed)


def _paper_on_kite(args: argparse.Namespace, prepared: tuple[Any, Any]) -> int:
    """Paper trading on live Kite prices: Kite's feed, the simulated broker, NSE sessions."""
    from brokers.kite.auth import load_credentials
    from brokers.kite.settings import KiteSettings
    from config.calendar import NseCalendar
    from engine.daemon import serve_session
    from engine.runners.live import kite_source
    from engine.runners.paper import PaperSession
    from engine.store.database import open_database

    settings, strategy = prepared
    if not args.kite_symbols:
        raise UserError("--feed kite needs --kite-symbols INFY,RELIANCE,…")
    symbols = [s.strip() for s in args.kite_symbols.split(",") if s.strip()]
    kite, credentials = KiteSettings.from_env(), load_credentials()

    async def go() -> int:
        warmup = await _warmup_history(args, settings, kite, credentials, symbols)
        source = await kite_source(
            settings, kite, credentials, symbols, calendar=NseCalendar(settings.session)
        )
        session = PaperSession(
            source,
            strategy,
            settings,
            open_database(args.db),
            resume=args.resume,
            warmup=warmup,
        )
        return await serve_session(session, args.host, args.port)

    return asyncio.run(go())


def cmd_live(args: argparse.Namespace) -> int:
    from brokers.kite.auth import load_credentials
    from brokers.kite.settings import KiteSettings
    from config.calendar import NseCalendar
    from engine.daemon import serve_session
    from engine.pipeline import run_config
    from engine.runners.live import live_session
    from engine.store.database import open_database
    from risk.promotion import check_live_allowed

    settings, strategy = prepare_run(args, profile="live")
    engine = open_database(args.db)
    promotion = check_live_allowed(
        engine, run_config(settings, strategy), settings.capital, settings.promotion,
        args.i_understand_this_is_live,
    )  # fmt: skip
    print(f"promotion #{promotion.id} of {promotion.created_at[:10]} allows this configuration")
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    kite, credentials = KiteSettings.from_env(), load_credentials()

    async def go() -> int:
        warmup = await _warmup_history(args, settings, kite, credentials, symbols)
        session = await live_session(
            settings, strategy, engine, kite, credentials, symbols, resume=args.resume,
            calendar=NseCalendar(settings.session), warmup=warmup,
        )  # fmt: skip
        return await serve_session(session, args.host, args.port)

    return asyncio.run(go())


async def _warmup_history(
    args: argparse.Namespace, settings: Any, kite: Any, credentials: Any, symbols: list[str]
) -> Any:
    from datetime import datetime
    from pathlib import Path

    from config.calendar import IST
    from engine.runners.live import history_for_warmup

    return await history_for_warmup(
        kite,
        credentials,
        symbols,
        settings.interval,
        args.warmup_days,
        Path(args.history_cache),
        datetime.now(IST).date(),
    )


def _feed_bars(args: argparse.Namespace) -> tuple[Any, str]:
    """``--feed replay:PATH[,PATH]`` or ``replay:synthetic``; live Kite ticks need credentials."""
    feed = args.feed
    if feed is None:
        from brokers.kite.auth import load_credentials

        try:
            load_credentials()
        except Exception:
            feed = "replay:synthetic"
            print("no Kite credentials: replaying the synthetic market (--feed to choose)")
        else:
            raise UserError(
                "Kite credentials found: choose --feed kite --kite-symbols … (paper on live "
                "prices) or --feed replay:PATH"
            )
    kind, _, target = feed.partition(":")
    if kind != "replay" or not target:
        raise UserError(f"--feed {feed!r}: use replay:PATH (file or directory) or replay:synthetic")
    if target == "synthetic":
        from engine.data.synthetic import SyntheticMarket

        market = SyntheticMarket(symbols=args.symbols, days=args.days, seed=args.seed)
        return market.bars(args.interval), market.fingerprint()
    from engine.data.loader import load_bars

    paths = target.split(",")
    return load_bars(paths, args.interval, args.start_date, args.end_date), target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trader", description=__doc__.splitlines()[0])
    parser.add_argument("--log-json", action="store_true", help="JSON log lines")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    bt = sub.add_parser("backtest", help="event-replay backtest on stored bars")
    bt.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="Parquet/CSV file or directory; repeatable",
    )
    add_run_options(bt)
    bt.set_defaults(func=cmd_backtest)

    demo = sub.add_parser("demo", help="the whole job on a seeded synthetic market")
    demo.add_argument("--symbols", type=int, default=5)
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--epochs", type=int, default=3, help="demo model training epochs")
    demo.add_argument("--model-dir", default="runs/demo-model")
    add_run_options(demo)
    demo.set_defaults(func=cmd_demo, db="demo.db", mode="backtest", strategy="model")

    paper = sub.add_parser("paper", help="paper-trading daemon (simulated broker, live pacing)")
    paper.add_argument(
        "--feed",
        help="kite (live prices), replay:PATH[,PATH…] or replay:synthetic "
        "(the default when no Kite credentials exist)",
    )
    paper.add_argument("--kite-symbols", help="--feed kite: trading symbols, comma-separated")
    add_warmup_options(paper)
    paper.add_argument("--speed", default="1x", help="replay pace: 1x, 60x, … or max")
    paper.add_argument("--resume", metavar="RUN_ID", help="continue a stopped/crashed run")
    paper.add_argument("--host", default="127.0.0.1", help="HTTP API bind address")
    paper.add_argument("--port", type=int, default=0, help="HTTP API port (0: none)")
    paper.add_argument("--symbols", type=int, default=5, help="synthetic feed: symbols")
    paper.add_argument("--days", type=int, default=20, help="synthetic feed: sessions")
    paper.add_argument("--seed", type=int, default=7, help="synthetic feed: seed")
    add_run_options(paper)
    paper.set_defaults(func=cmd_paper, mode="paper")

    live = sub.add_parser("live", help="LIVE trading through Kite (needs a promotion)")
    live.add_argument("--symbols", required=True, help="Kite trading symbols, comma-separated")
    live.add_argument(
        "--i-understand-this-is-live", action="store_true", help="required: real orders, real money"
    )
    live.add_argument("--resume", metavar="RUN_ID")
    add_warmup_options(live)
    live.add_argument("--host", default="127.0.0.1")
    live.add_argument("--port", type=int, default=0)
    add_run_options(live)
    live.set_defaults(func=cmd_live, mode="live")

    for name in COMMAND_MODULES:
        register = _optional_register(name)
        if register is not None:
            register(sub)
    return parser


def _optional_register(module: str) -> Callable[[Any], None] | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None  # that subsystem is not installed in this build
        raise
    return getattr(mod, "register", None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from engine.log import configure_logging

    configure_logging(getattr(args, "mode", "backtest"), args.log_json, args.log_level)
    try:
        return int(args.func(args) or 0)
    except (DataError, SettingsError, UserError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trader ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except Exception as exc:
        from engine.bus import HandlerError

        if args.debug:
            raise
        kind = "run failed" if isinstance(exc, HandlerError) else "internal error"
        print(f"error: {kind}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
