"""``trader backtest | demo | paper | live``: the commands that run the trading pipeline."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from app.commands.data_options import add_data_options
from app.commands.launch import apply_launch, launch_record
from app.commands.run_options import (
    add_run_options,
    add_warmup_options,
    history_cache,
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
    bt.add_argument(
        "--symbols", metavar="A,B", type=symbol_list,
        help="the universe: these symbols from the files given (default: every symbol in them)",
    )  # fmt: skip
    add_data_options(bt)
    add_run_options(bt)
    bt.set_defaults(func=cmd_backtest)

    demo = sub.add_parser("demo", help="the whole job on a seeded synthetic market")
    demo.add_argument("--symbols", type=int, default=5, help="synthetic symbols")
    demo.add_argument("--days", type=int, default=60, help="synthetic sessions")
    demo.add_argument("--seed", type=int, default=7, help="market and training seed")
    demo.add_argument("--epochs", type=int, default=3, help="demo model training epochs")
    demo.add_argument(
        "--model-dir",
        help="where the demo's model is trained, one sub-directory per recipe, reused when the "
        "same demo runs again (default: $TRADER_HOME/demo-model)",
    )
    add_run_options(demo, strategy="model")
    # the demo stores its run in the default database like every command, so the printed
    # `trader runs show RUN_ID` finds it
    demo.set_defaults(func=cmd_demo, mode="backtest")

    paper = sub.add_parser("paper", help="paper-trading daemon (simulated broker, live pacing)")
    paper.add_argument(
        "--feed",
        help="kite (live prices), replay:PATH[,PATH…] or replay:synthetic "
        "(the default when no Kite credentials exist)",
    )
    paper.add_argument("--kite-symbols", help="--feed kite: trading symbols, comma-separated")
    add_warmup_options(paper)
    paper.add_argument(
        "--speed", default="1x",
        help="replay pace: 1x, 60x, … or max (a year of 1-minute bars at 60x takes about 25 h)",
    )  # fmt: skip
    paper.add_argument(
        "--resume", metavar="RUN_ID",
        help="continue a stopped/crashed run: its feed, data and settings come from the run "
        "(flags that differ are refused)",
    )  # fmt: skip
    paper.add_argument("--host", default="127.0.0.1", help="HTTP API bind address")
    paper.add_argument("--port", type=int, default=0, help="HTTP API port (0: none)")
    paper.add_argument(
        "--symbols", default="5", metavar="N|A,B",
        help="replay:synthetic: how many symbols; replay:PATH: which symbols of the files "
        "(default: 5 synthetic, every symbol of the files)",
    )  # fmt: skip
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
        session=settings.session.times, data=settings.data, symbols=args.symbols,
    )  # fmt: skip
    return run_and_report(args, prepared, bars, ", ".join(args.data))


def symbol_list(text: str) -> list[str]:
    """``INFY, TCS`` → ``["INFY", "TCS"]``."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give symbols separated by commas")
    return names


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(args)


def cmd_paper(args: argparse.Namespace) -> int:
    from app.runners.paper import parse_speed

    parse_speed(args.speed)  # a bad --speed is refused before anything is read
    if args.resume:
        apply_launch(args, "paper")  # the run's own feed, data, settings and pace
    if args.feed is None:  # a new run, or one stored before runs recorded how they started
        args.feed = _resolve_feed(args.feed)
    speed = parse_speed(args.speed)
    prepared = prepare_run(args, profile="paper")
    launch = launch_record(args)
    if args.feed == "kite":
        return _paper_on_kite(args, prepared, launch)
    bars, label = _feed_bars(args, prepared[0])
    print(
        "replaying stored bars: research, not paper evidence — `trader promote` counts only the "
        "sessions traded on live prices (--feed kite)"
    )
    from app.daemon import run_daemon

    return run_daemon(args, prepared, bars, label, speed, launch)


def _paper_on_kite(
    args: argparse.Namespace, prepared: tuple[Any, Any], launch: dict[str, Any]
) -> int:
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
            warmup=warmup, launch=launch, **store_options(args),
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
    from engine.store.database import NoDatabase, open_database
    from risk.promotion import check_live_allowed

    kite = kite_settings(args)  # bad Kite settings fail before anything else is read
    settings, strategy = prepare_run(args, profile="live")
    attach_predictor(strategy)  # a model's identity is part of the configuration promoted
    try:  # a promotion is stored in the database: none there, none given
        engine = open_database(args.db, create=False)
    except NoDatabase as exc:
        raise UserError(f"no approved promotion to live: {exc}") from None
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

    from app.runners.live import history_for_warmup
    from config.sessions import IST

    return await history_for_warmup(
        kite,
        credentials,
        symbols,
        settings.interval,
        args.warmup_days,
        history_cache(args),
        datetime.now(IST).date(),
        session=settings.session.times,
        data=settings.data,
    )


def _resolve_feed(feed: str | None) -> str:
    """``--feed`` as given, else ``replay:synthetic`` when no Kite credentials exist (live
    prices need a choice of symbols: with credentials the user must choose)."""
    if feed is not None:
        return feed
    from brokers.kite.auth import load_credentials

    try:
        load_credentials()
    except Exception:
        print("no Kite credentials: replaying the synthetic market (--feed to choose)")
        return "replay:synthetic"
    raise UserError(
        "Kite credentials found: choose --feed kite --kite-symbols … (paper on live "
        "prices) or --feed replay:PATH"
    )


def _feed_bars(args: argparse.Namespace, settings: EngineSettings) -> tuple[Any, str]:
    """``--feed replay:PATH[,PATH]`` or ``replay:synthetic`` in the run's session hours, files
    read by its ``data`` settings, the universe ``--symbols A,B`` chose."""
    session = settings.session.times
    kind, _, target = args.feed.partition(":")
    if kind != "replay" or not target:
        raise UserError(
            f"--feed {args.feed!r}: use replay:PATH (file or directory) or replay:synthetic"
        )
    count = args.symbols.strip().isdigit()
    if target == "synthetic":
        from engine.data.synthetic import SyntheticMarket

        if not count:
            raise UserError(f"--symbols {args.symbols!r}: replay:synthetic takes a number")
        market = SyntheticMarket(symbols=int(args.symbols), days=args.days, seed=args.seed)
        return market.bars(args.interval, session), market.fingerprint()
    from engine.data.loader import load_bars

    bars = load_bars(
        target.split(","), args.interval, args.start_date, args.end_date, session=session,
        data=settings.data, symbols=None if count else symbol_list(args.symbols),
    )  # fmt: skip
    return bars, target
