"""``trader promote``: check the promotion gates (``risk.promotion``) on stored evidence and
record the decision, approved or refused, with the evidence it was taken on."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.runs import DB_HELP
from engine.store.database import open_database


def register(sub: Any) -> None:
    promote = sub.add_parser("promote", help="check the promotion gates and record the decision")
    promote.add_argument("--to", choices=["live"], required=True)
    promote.add_argument("--backtest", required=True, metavar="RUN_ID")
    promote.add_argument(
        "--paper",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="a forward paper run on live prices (`trader paper --feed kite`), repeatable; a "
        "replay is research and is refused",
    )
    promote.add_argument(
        "--allow-in-sample",
        metavar="REASON",
        help="accept evidence that overlaps the model's training or validation data, or whose "
        "model has unknown provenance; the reason is recorded with the promotion",
    )
    promote.add_argument("--db", help=DB_HELP)
    promote.set_defaults(func=cmd_promote)


def cmd_promote(args: argparse.Namespace) -> int:
    """The decision is recorded either way; exit 0 approved, 2 refused (with every reason)."""
    from app.readable import format_metric
    from config.settings import load_settings
    from risk.promotion import evaluate, record

    engine = open_database(args.db, create=False)
    live = load_settings("live")
    result = evaluate(
        engine, args.backtest, args.paper, live.promotion, args.allow_in_sample, live=live
    )
    promotion_id = record(engine, result, args.to)
    override = result.evidence.get("in_sample_override")
    if override is not None and override["waived"]:
        print(
            f"in-sample evidence ACCEPTED by {override['operator']} (--allow-in-sample): "
            f"{override['reason']}"
        )
        for waived in override["waived"]:
            print(f"  waived: {waived}")
    backtest, paper = result.evidence["backtest"], result.evidence.get("paper", {})
    print(
        f"strategy key {result.evidence['strategy_key'][:12]}: {backtest['kind']} "
        f"{backtest['ref']} Sharpe {format_metric('sharpe', backtest['sharpe'])}, "
        f"max drawdown {format_metric('max_drawdown', backtest['max_drawdown'])}; paper on "
        f"live prices {paper.get('trading_days', 0)} sessions, "
        f"P&L {format_metric('total_pnl', paper.get('pnl', 0.0))}"
    )
    for run in paper.get("runs", []):
        span = f", {run['first_session']} → {run['last_session']}" if run["sessions"] else ""
        print(
            f"  paper {run['run_id']}: feed {run['feed']}, {run['sessions']} sessions traded"
            f"{span}, P&L {format_metric('total_pnl', run['pnl'])}"
        )
    if result.approved:
        print(f"promotion #{promotion_id} to {args.to}: APPROVED")
        return 0
    print(f"promotion #{promotion_id} to {args.to}: REFUSED")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 2
