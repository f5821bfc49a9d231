"""``trader runs list|show|trades|fills|equity``, ``report`` and ``compare``: read stored runs
back. Reading never creates a database (``read_database``)."""

from __future__ import annotations

import argparse
import json
import shlex
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from app.commands import run_exports
from app.readable import format_metric, inr, ist, utc
from engine.store.database import NoDatabase, database_url, open_database, shown_url
from engine.store.queries import load_run, run_lease, runs_query
from engine.store.schema import RunRow

DB_HELP = "database URL or SQLite path (default: $TRADER_DB, else trader.db in $TRADER_HOME)"


def register(sub: Any) -> None:
    runs = sub.add_parser("runs", help="stored runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("list", help="list runs, newest first")
    ls.add_argument("--db", help=DB_HELP)
    ls.add_argument("--limit", type=int, default=20, help="at most this many runs")
    ls.set_defaults(func=cmd_list)
    show = rsub.add_parser("show", help="one run: config, metrics, trades, risk events")
    show.add_argument("run_id")
    show.add_argument("--db", help=DB_HELP)
    show.add_argument("--json", action="store_true", help="machine-readable")
    show.set_defaults(func=cmd_show)
    run_exports.register(rsub, DB_HELP)
    register_reports(sub)


def read_database(db: str | None) -> Engine:
    """The database a lookup reads: never created by looking (``NoDatabase``, status 2)."""
    return open_database(db, create=False)


def cmd_list(args: argparse.Namespace) -> int:
    """Newest first. The status is the stored one, except ``stale``: a run stored as running
    whose owner stopped renewing its lease (killed) — resumable, never promotion evidence."""
    url = shown_url(database_url(args.db))
    try:
        engine = read_database(args.db)
    except NoDatabase:
        print(f"no runs stored in {url} (the database does not exist yet)")
        return 0
    with engine.connect() as conn:
        rows = conn.execute(
            runs_query(conn).order_by(RunRow.created_at.desc()).limit(args.limit)
        ).all()
    if not rows:
        print(f"no runs stored in {url}")
        return 0
    print(f"runs in {url}, newest first")
    print(
        f"{'run_id':<13} {'mode':<8} {'strategy':<12} {'status':<9} {'bars':>9} "
        f"{'return':>8} {'sharpe':>7}  created (UTC)"
    )
    for r in rows:
        m = json.loads(r.metrics_json) if r.metrics_json else {}
        status = run_lease(r).effective_status
        print(
            f"{r.run_id:<13} {r.mode:<8} {r.strategy:<12} {status:<9} "
            f"{r.bars_processed:>9,} {format_metric('total_return', m.get('total_return')):>8} "
            f"{format_metric('sharpe', m.get('sharpe')):>7}  {_created(r.created_at)}"
        )
    return 0


def _created(stored: str) -> str:
    try:
        return utc(stored)
    except ValueError:  # a value from an old database that is not ISO 8601
        return stored


def cmd_show(args: argparse.Namespace) -> int:
    from app.commands.run_options import metric_lines

    engine = read_database(args.db)
    run = load_run(engine, args.run_id)
    if args.json:
        print(json.dumps(run, indent=2, default=str))
        return 0
    from engine.store.queries import load_launch

    launch = load_launch(engine, args.run_id)
    print(
        f"run {run['run_id']}  mode={run['mode']}  strategy={run['strategy']}  "
        f"status={run['status']}  created {_created(run['created_at'])}"
    )
    lease = run["lease"]
    if run["status"] in ("running", "stale") and lease["pid"] is not None:
        held = "held by" if lease["state"] == "held" else f"{lease['state']}; last held by"
        print(
            f"lease {held} pid {lease['pid']} on {lease['host']} since {lease['acquired_at']}, "
            f"last heartbeat {lease['heartbeat_age_s']}s ago (timeout {lease['timeout_s']}s)"
        )
    print(
        f"code {run['code_version']}  data {run['data_fingerprint']}  "
        f"bars {run['bars_processed']:,}  orders {run['orders']:,}  fills {run['fills']:,}"
    )
    print("params:", json.dumps(run["config"].get("params", {})))
    if launch:
        print(f"started with: {started_with(launch)}")
    if run["mode"] == "paper" and run["status"] in ("stopped", "failed", "stale"):
        db = f" --db {args.db}" if args.db else ""
        print(f"resume: trader paper --resume {run['run_id']}{db}")
    if run["model_data"] is not None:
        from app.overlap import describe

        print("\n".join(describe(run["model_data"])))
    elif "model_hash" in run["config"]:
        print("model data: not recorded (a run stored before runs measured their model's data)")
    metrics = run["metrics"]
    if metrics:
        lines = metric_lines(metrics)
        width = max(len(label) for label, _ in lines)
        for label, value in lines:
            print(f"  {label:<{width}}  {value}")
    print(f"trades: {len(run['trades']):,}  (times IST)")
    for t in run["trades"][:20]:
        print(
            f"  {t['symbol']:<10} {t['side']:<5} {t['qty']:>5} {_ist(t['entry_time'])} "
            f"{t['entry_price']:>10,.2f} → {_ist(t['exit_time'])} {t['exit_price']:>10,.2f} "
            f"P&L {inr(t['pnl']):>12}"
        )
    if len(run["trades"]) > 20:
        print(
            f"  … {len(run['trades']) - 20:,} more (trader runs trades {run['run_id']} --csv OUT "
            "for all)"
        )
    print(f"risk events: {len(run['risk_events']):,}")
    for e in run["risk_events"][:10]:
        print(f"  {_ist(e['time'])} {e['kind']} {e['gate']} {e['symbol']} {e['reason']}")
    return 0


def started_with(launch: dict[str, Any]) -> str:
    """The stored options as flags (``app/commands/launch.py``), those with a value."""
    parts = []
    for name, value in launch.items():
        flag = "--" + name.replace("_", "-")
        if value in (None, False, [], ""):
            continue
        if value is True:
            parts.append(flag)
        else:
            for each in value if isinstance(value, list) else [value]:
                parts.append(f"{flag} {shlex.quote(str(each))}")
    return " ".join(parts)


def _ist(iso: str) -> str:
    return ist(datetime.fromisoformat(iso))


def register_reports(sub: Any) -> None:
    compare = sub.add_parser("compare", help="a paper run against a backtest of the same days")
    compare.add_argument("paper_run")
    compare.add_argument("backtest_run")
    compare.add_argument(
        "--tolerance-minutes",
        type=float,
        default=0.0,
        help="how far apart entries may be and still match (default: same bar)",
    )
    compare.add_argument("--db", help=DB_HELP)
    compare.add_argument("--json", action="store_true", help="machine-readable")
    compare.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from app.compare import compare_trades

    engine = read_database(args.db)
    paper, backtest = load_run(engine, args.paper_run), load_run(engine, args.backtest_run)
    result = compare_trades(paper["trades"], backtest["trades"], args.tolerance_minutes * 60)
    summary = result.as_dict()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(
        f"paper {paper['run_id']} ({paper['mode']}) vs backtest {backtest['run_id']} "
        f"({backtest['mode']})"
    )
    for key in ("matched", "only_paper", "only_backtest"):
        print(f"  {key.replace('_', ' '):<24} {summary[key]:,}")
    for key in ("paper_pnl", "backtest_pnl", "pnl_difference", "matched_pnl_difference"):
        print(f"  {key.replace('_', ' ').replace('pnl', 'P&L'):<24} {inr(summary[key])}")
    print(f"  {'avg slippage per unit':<24} {inr(summary['avg_slippage_per_unit'])}")
    for kind in ("only_paper", "only_backtest"):
        for t in summary["trades"][kind][:10]:
            print(
                f"  {kind.replace('_', ' ') + ':':<15} {t['symbol']} {t['side']} "
                f"{_ist(t['entry_time'])} P&L {inr(t['pnl'])}"
            )
    return 0
