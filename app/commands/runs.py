"""``trader runs list`` and ``trader runs show RUN_ID``: read stored runs back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.store.database import open_database
from engine.store.queries import load_run, run_lease, runs_query
from engine.store.schema import RunRow


def register(sub: Any) -> None:
    runs = sub.add_parser("runs", help="stored runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("list", help="list runs, newest first")
    ls.add_argument("--db")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_list)
    show = rsub.add_parser("show", help="one run: config, metrics, trades, risk events")
    show.add_argument("run_id")
    show.add_argument("--db")
    show.add_argument("--json", action="store_true", help="machine-readable")
    show.set_defaults(func=cmd_show)
    register_reports(sub)
    register_promotion(sub)


def cmd_list(args: argparse.Namespace) -> int:
    """Newest first. The status is the stored one, except ``stale``: a run stored as running
    whose owner stopped renewing its lease (killed) — resumable, never promotion evidence."""
    engine = open_database(args.db)
    with engine.connect() as conn:
        rows = conn.execute(
            runs_query(conn).order_by(RunRow.created_at.desc()).limit(args.limit)
        ).all()
    if not rows:
        print("no runs stored")
        return 0
    print(
        f"{'run_id':<13} {'mode':<8} {'strategy':<12} {'status':<9} {'bars':>9} "
        f"{'return':>8} {'sharpe':>7}  created"
    )
    for r in rows:
        m = json.loads(r.metrics_json) if r.metrics_json else {}
        ret = f"{m['total_return']:.2%}" if "total_return" in m else "-"
        sharpe = f"{m['sharpe']:.2f}" if isinstance(m.get("sharpe"), float) else "-"
        status = run_lease(r).effective_status
        print(
            f"{r.run_id:<13} {r.mode:<8} {r.strategy:<12} {status:<9} "
            f"{r.bars_processed:>9} {ret:>8} {sharpe:>7}  {r.created_at[:19]}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run = load_run(open_database(args.db), args.run_id)
    if args.json:
        print(json.dumps(run, indent=2, default=str))
        return 0
    print(
        f"run {run['run_id']}  mode={run['mode']}  strategy={run['strategy']}  "
        f"status={run['status']}"
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
        f"bars {run['bars_processed']}  orders {run['orders']}  fills {run['fills']}"
    )
    print("params:", json.dumps(run["config"].get("params", {})))
    if run["model_data"] is not None:
        from app.overlap import describe

        print("\n".join(describe(run["model_data"])))
    elif "model_hash" in run["config"]:
        print("model data: not recorded (a run stored before runs measured their model's data)")
    for key, value in run["metrics"].items():
        print(f"  {key:<20} {value}")
    print(f"trades: {len(run['trades'])}")
    for t in run["trades"][:20]:
        print(
            f"  {t['symbol']:<10} {t['side']:<5} {t['qty']:>5} {t['entry_time']} "
            f"{t['entry_price']:>10.2f} → {t['exit_time']} {t['exit_price']:>10.2f} "
            f"pnl {t['pnl']:>10.2f}"
        )
    if len(run["trades"]) > 20:
        print(f"  … {len(run['trades']) - 20} more (--json for all)")
    print(f"risk events: {len(run['risk_events'])}")
    for e in run["risk_events"][:10]:
        print(f"  {e['time']} {e['kind']} {e['gate']} {e['symbol']} {e['reason']}")
    return 0


def register_reports(sub: Any) -> None:
    report = sub.add_parser("report", help="self-contained HTML report of a stored run")
    report.add_argument("run_id")
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--db")
    report.set_defaults(func=cmd_report)
    compare = sub.add_parser("compare", help="a paper run against a backtest of the same days")
    compare.add_argument("paper_run")
    compare.add_argument("backtest_run")
    compare.add_argument(
        "--tolerance-minutes",
        type=float,
        default=0.0,
        help="how far apart entries may be and still match (default: same bar)",
    )
    compare.add_argument("--db")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)


def cmd_report(args: argparse.Namespace) -> int:
    from app.report import render_report
    from engine.store.queries import load_equity

    engine = open_database(args.db)
    run = load_run(engine, args.run_id)
    ts, equity = load_equity(engine, args.run_id)
    args.out.write_text(render_report(run, ts, equity), encoding="utf-8")
    print(f"report: {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.compare import compare_trades

    engine = open_database(args.db)
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
    for key in (
        "matched",
        "only_paper",
        "only_backtest",
        "paper_pnl",
        "backtest_pnl",
        "pnl_difference",
        "matched_pnl_difference",
        "avg_slippage_per_unit",
    ):
        value = summary[key]
        print(f"  {key:<24} {value:,.2f}" if isinstance(value, float) else f"  {key:<24} {value}")
    for t in summary["trades"]["only_paper"][:10]:
        print(f"  only paper:    {t['symbol']} {t['side']} {t['entry_time']} pnl {t['pnl']:.2f}")
    for t in summary["trades"]["only_backtest"][:10]:
        print(f"  only backtest: {t['symbol']} {t['side']} {t['entry_time']} pnl {t['pnl']:.2f}")
    return 0


def register_promotion(sub: Any) -> None:
    promote = sub.add_parser("promote", help="check the promotion gates and record the decision")
    promote.add_argument("--to", choices=["live"], required=True)
    evidence = promote.add_mutually_exclusive_group(required=True)
    evidence.add_argument("--backtest", metavar="RUN_ID", help="a finished backtest run")
    evidence.add_argument(
        "--study",
        metavar="STUDY_ID",
        help="a walk-forward study: the backtest gates and the profitable-fold gate apply to "
        "its stitched out-of-sample curve",
    )
    promote.add_argument("--paper", action="append", default=[], metavar="RUN_ID")
    promote.add_argument(
        "--allow-in-sample",
        metavar="REASON",
        help="accept evidence that overlaps the model's training or validation data, or whose "
        "model has unknown provenance; the reason is recorded with the promotion",
    )
    promote.add_argument("--db")
    promote.set_defaults(func=cmd_promote)


def cmd_promote(args: argparse.Namespace) -> int:
    from config.settings import load_settings
    from risk.promotion import evaluate, record

    engine = open_database(args.db)
    rules = load_settings("live").promotion
    result = evaluate(
        engine, args.backtest, args.paper, rules, args.allow_in_sample, study_id=args.study
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
    paper = result.evidence.get("paper", {})
    if "study" in result.evidence:
        study = result.evidence["study"]
        evidence = (
            f"study {study['study_id']} stitched out-of-sample Sharpe {study['sharpe']}, "
            f"{study['profitable_folds']}/{study['folds']} folds profitable"
        )
    else:
        evidence = f"backtest Sharpe {result.evidence['backtest']['sharpe']}"
    print(
        f"strategy key {result.evidence['strategy_key'][:12]}: {evidence}, paper "
        f"{paper.get('trading_days')} days, P&L {paper.get('pnl', 0):,.2f}"
    )
    if result.approved:
        print(f"promotion #{promotion_id} to {args.to}: APPROVED")
        return 0
    print(f"promotion #{promotion_id} to {args.to}: REFUSED")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 2
