"""``trader runs list`` and ``trader runs show RUN_ID``: read stored runs back."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import func, select

from engine.events import ts_to_ist
from engine.store.database import open_database
from engine.store.schema import FillRow, OrderRow, RiskEventRow, RunRow, TradeRow


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


def cmd_list(args: argparse.Namespace) -> int:
    engine = open_database(args.db)
    with engine.connect() as conn:
        rows = conn.execute(
            select(RunRow).order_by(RunRow.created_at.desc()).limit(args.limit)
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
        print(
            f"{r.run_id:<13} {r.mode:<8} {r.strategy:<12} {r.status:<9} "
            f"{r.bars_processed:>9} {ret:>8} {sharpe:>7}  {r.created_at[:19]}"
        )
    return 0


def load_run(engine: Any, run_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        run = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).first()
        if run is None:
            raise ValueError(f"no run {run_id!r} in {engine.url}")
        counts = {
            name: conn.execute(
                select(func.count()).select_from(table).where(table.run_id == run_id)
            ).scalar_one()
            for name, table in (("orders", OrderRow), ("fills", FillRow))
        }
        trades = conn.execute(
            select(TradeRow).where(TradeRow.run_id == run_id).order_by(TradeRow.entry_ts)
        ).all()
        risk = conn.execute(
            select(RiskEventRow).where(RiskEventRow.run_id == run_id).order_by(RiskEventRow.seq)
        ).all()
    return {
        "run_id": run.run_id,
        "mode": run.mode,
        "strategy": run.strategy,
        "status": run.status,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "code_version": run.code_version,
        "data_fingerprint": run.data_fingerprint,
        "bars_processed": run.bars_processed,
        "config": json.loads(run.config_json),
        "metrics": json.loads(run.metrics_json) if run.metrics_json else {},
        "data_quality": json.loads(run.quality_json) if run.quality_json else {},
        "error": run.error,
        **counts,
        "trades": [
            {
                "symbol": t.symbol,
                "side": "LONG" if t.side > 0 else "SHORT",
                "qty": t.qty,
                "entry_time": ts_to_ist(t.entry_ts).isoformat(),
                "entry_price": t.entry_price,
                "exit_time": ts_to_ist(t.exit_ts).isoformat(),
                "exit_price": t.exit_price,
                "pnl": t.pnl,
                "costs": t.costs,
                "exit_reason": t.exit_reason,
            }
            for t in trades
        ],
        "risk_events": [
            {
                "time": ts_to_ist(e.ts).isoformat(),
                "kind": e.kind,
                "gate": e.gate,
                "symbol": e.symbol,
                "reason": e.reason,
                "state": e.state,
            }
            for e in risk
        ],
    }


def cmd_show(args: argparse.Namespace) -> int:
    run = load_run(open_database(args.db), args.run_id)
    if args.json:
        print(json.dumps(run, indent=2, default=str))
        return 0
    print(
        f"run {run['run_id']}  mode={run['mode']}  strategy={run['strategy']}  "
        f"status={run['status']}"
    )
    print(
        f"code {run['code_version']}  data {run['data_fingerprint']}  "
        f"bars {run['bars_processed']}  orders {run['orders']}  fills {run['fills']}"
    )
    print("params:", json.dumps(run["config"].get("params", {})))
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
