"""``trader backtest | demo | paper | live``: the commands that run the trading pipeline."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from app.commands.data_options import add_data_options
from app.commands.run_options import (
    add_run_options,
    add_warmup_options,
    prepare_run,
    run_and_report,
)
from app.daemon import add_store_options
from app.errors import UserError

if TYPE_CHECKING:
    from config.settings import EngineSettings


def register(sub: Any) -> None:

    bt = sub.add_parser("backtest", help="event-replay backtest on stored bars")
    bt.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="PATH",
        help="Parquet/CSV file or directory; repeatable",
    )
    add_data_options(bt)
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
    add_data_options(paper)
    add_run_options(paper)
    add_store_options(paper)
    paper.set_defaults(func=cmd_paper, mode="paper")

    live = sub.add_parser("live", help="LIVE trading through Kite (needs a promotion)")
    live.add_argument("--symbols", required=True, help="Kite trading symbols, comma-separated")
    live.add_argument(
        "--i-understand-this-is-live", action="store_true", help="required: real orders, real money"
    )
    live.add_argument("--resume", metavar="RUN_ID")
    live.add_argument(
        "--market-protection",
        type=market_protection,
        metavar="P",
        help="market protection of MARKET/SL-M orders: -1 (Kite's automatic band) or a "
        "percentage 0 < P <= 100; overrides KITE_MARKET_PROTECTION (default -1)",
    )
    add_warmup_options(live)
    live.add_argument("--host", default="127.0.0.1")
    live.add_argument("--port", type=int, default=0)
    add_run_options(live)
    add_store_options(live)
    live.set_defaults(func=cmd_live, mode="live")


def market_protection(text: str) -> float:
    """``--market-protection``, checked as the setting is (never 0: Kite refuses it)."""
    from brokers.kite.order_params import check_market_protection

    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--market-protection: {text!r} is not a number") from None
    try:
        return check_market_protection(number, "--market-protection")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def kite_settings(args: argparse.Namespace) -> Any:
    """Kite settings from the environment with the command line's overrides on top."""
    from brokers.kite.settings import KiteSettings

    overrides: dict[str, Any] = {}
    if getattr(args, "market_protection", None) is not None:
        overrides["market_protection"] = args.market_protection
    return KiteSettings.from_env(**overrides)


def cmd_backtest(args: argparse.Namespace) -> int:
    from engine.data.loader import load_bars

    prepared = prepare_run(args)
    settings = prepared[0]
    bars = load_bars(
        args.data, args.interval, args.start_date, args.end_date,
        session=settings.session.times, data=settings.data,
    )  # fmt: skip
    return run_and_report(args, prepared, bars, ", ".join(args.data))


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(args)


def cmd_paper(args: argparse.Namespace) -> int:
    from app.runners.paper import parse_speed

    speed = parse_speed(args.speed)
    prepared = prepare_run(args, profile="paper")
    if args.feed == "kite":
        return _paper_on_kite(args, prepared)
    bars, label = _feed_bars(args, prepared[0])
    from app.daemon import run_daemon

    return run_daemon(args, prepared, bars, label, speed)


def _paper_on_kite(args: argparse.Namespace, prepared: tuple[Any, Any]) -> int:
    """Paper trading on live Kite prices: Kite's feed, the simulated broker, NSE sessions."""
    from app.daemon import serve_session, store_options
    from app.runners.live import kite_source
    from app.runners.paper import trading_session
    from brokers.kite.auth import load_credentials
    from brokers.kite.settings import KiteSettings
    from config.calendar import NseCalendar
    from engine.store.database import open_database

    settings, strategy = prepared
    if not args.kite_symbols:
        raise UserError("--feed kite needs --kite-symbols INFY,RELIANCE,…")
    symbols = [s.strip() for s in args.kite_symbols.split(",") if s.strip()]
    kite, credentials = KiteSettings.from_env(), load_credentials()

    async def go() -> int:
        warmup = await _warmup_history(args, settings, kite, credentials, symbols)
        source = await kite_source(
            settings, kite, credentials, symbols, calendar=NseCalendar(settings.session),
            warmup=warmup,
        )  # fmt: skip
        session = trading_session(
            source, strategy, settings, open_database(args.db), resume=args.resume,
            warmup=warmup, **store_options(args),
        )  # fmt: skip
        return await serve_session(args, session)

    return asyncio.run(go())


def cmd_live(args: argparse.Namespace) -> int:
    from app.daemon import serve_session, store_options
    from app.runners.live import live_session, telegram_alerts
    from app.wiring import attach_predictor
    from brokers.kite.auth import load_credentials
    from config.calendar import NseCalendar
    from engine.pipeline import run_config
    from engine.store.database import open_database
    from risk.promotion import check_live_allowed

    kite = kite_settings(args)  # bad Kite settings fail before anything else is read
    settings, strategy = prepare_run(args, profile="live")
    attach_predictor(strategy)  # a model's identity is part of the configuration promoted
    engine = open_database(args.db)
    promotion = check_live_allowed(
        engine, run_config(settings, strategy), settings.capital, settings.promotion,
        args.i_understand_this_is_live,
    )  # fmt: skip
    print(f"promotion #{promotion.id} of {promotion.created_at[:10]} allows this configuration")
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    credentials = load_credentials(kite)

    async def go() -> int:
        warmup = await _warmup_history(args, settings, kite, credentials, symbols)
        alerts = telegram_alerts(kite)
        if alerts is not None:
            await alerts.start()
        try:
            session = await live_session(
                settings, strategy, engine, kite, credentials, symbols, resume=args.resume,
                calendar=NseCalendar(settings.session), warmup=warmup, alerts=alerts,
                **store_options(args),
            )  # fmt: skip
            return await serve_session(args, session)
        finally:
            if alerts is not None:
                await alerts.close()

    return asyncio.run(go())


async def _warmup_history(
    args: argparse.Namespace, settings: Any, kite: Any, credentials: Any, symbols: list[str]
) -> Any:
    from datetime import datetime
    from pathlib import Path

    from app.runners.live import history_for_warmup
    from config.sessions import IST

    return await history_for_warmup(
        kite,
        credentials,
        symbols,
        settings.interval,
        args.warmup_days,
        Path(args.history_cache),
        datetime.now(IST).date(),
        session=settings.session.times,
        data=settings.data,
    )


def _feed_bars(args: argparse.Namespace, settings: EngineSettings) -> tuple[Any, str]:
    """``--feed replay:PATH[,PATH]`` or ``replay:synthetic`` in the run's session hours, files
    read by its ``data`` settings; live Kite ticks need credentials."""
    session = settings.session.times
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
        return market.bars(args.interval, session), market.fingerprint()
    from engine.data.loader import load_bars

    paths = target.split(",")
    bars = load_bars(
        paths, args.interval, args.start_date, args.end_date, session=session, data=settings.data
    )
    return bars, target
