"""Paper → live promotion gates (the seed's rule) and their record.

A strategy configuration — strategy, parameters and model hash, *not* capital or mode — is
identified by ``strategy_key``. It may go live only with a stored, approved promotion for that
exact key. The gates (every threshold in ``config.settings.PromotionSettings``, applied only in
``evaluate``):

- backtest evidence (``BacktestEvidence``: a finished backtest run today; a walk-forward
  study's stitched out-of-sample curve is a second loader of the same shape): Sharpe > 1.5,
  max drawdown < 20%, and for a study enough profitable folds;
- paper evidence: forward paper trading on live prices (``runs.feed_kind`` = kite) of the same
  key, covering ≥ 20 trading sessions actually traded by the wall clock (``runs.sessions_json``
  — not bars, not replay time), with positive P&L and max drawdown < 20%. A historical replay,
  at any speed and on any data, is research: refused, saying why;
- every piece of evidence ran with at least the costs and slippage the live configuration
  will have: ``--costs none``, lower cost rates or less slippage are refused, naming the
  setting.

Refusals are recorded too, with the same evidence, so the history of attempts is auditable.

Evidence for a model must be out-of-sample: every backtest or paper run that traded a model
records, when it starts, how much of its period the model was trained or validated on
(``runs.in_sample_fraction``, measured by the app layer from the model file's provenance).
A run with any overlap, whose model's provenance is unknown, or that records no measure is
refused, naming the overlap — unless the operator overrides it with a reason
(``--allow-in-sample REASON``), which is recorded with the promotion.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from config.settings import EngineSettings, PromotionSettings, load_settings
from engine.metrics import drawdown_series
from engine.store.queries import load_equity, run_lease, runs_query
from engine.store.schema import KITE_FEED, PromotionRow, RunRow


def strategy_key(strategy_config: dict[str, Any]) -> str:
    """Hash of what decides trades: the strategy's own config (name, params, model hash)."""
    keep = {k: v for k, v in strategy_config.items() if k != "settings"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class GateResult:
    approved: bool
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


#: what a paper run may be to count as evidence: still running (under a live lease), stopped
#: by its operator, or through its data. Not failed, interrupted, or stale (killed: its last
#: bars may never have been written)
PAPER_EVIDENCE = frozenset({"running", "stopped", "finished"})


def _run(engine: Engine, run_id: str) -> tuple[Any, str]:
    """The stored run and its status as every reader sees it (``stale`` included)."""
    with engine.connect() as conn:
        run = conn.execute(runs_query(conn).where(RunRow.run_id == run_id)).first()
    if run is None:
        raise ValueError(f"no run {run_id!r} in {engine.url}")
    return run, run_lease(run).effective_status


def in_sample_reasons(run: Any) -> list[str]:
    """Why a stored run is not out-of-sample evidence for the model it traded (none when it is,
    or when it traded no model): judged on what the run recorded when it started."""
    if "model_hash" not in json.loads(run.config_json):
        return []
    if not run.model_data_json:
        return [
            f"run {run.run_id} traded a model but records no measure of the data the model was "
            "trained on (stored before runs measured it): rerun it"
        ]
    data = json.loads(run.model_data_json)
    models = "; ".join(f"{m['model_hash']}: {m['data_seen']}" for m in data.get("models", []))
    if data.get("provenance") == "unknown":
        return [
            f"run {run.run_id}: the model's provenance is unknown ({models}), so nothing shows "
            "this evidence is out-of-sample"
        ]
    fraction = run.in_sample_fraction
    if fraction is None:
        return [
            f"run {run.run_id}: how much of it the model saw could not be measured "
            f"({data.get('note', 'no in-sample fraction recorded')})"
        ]
    if fraction > 0:
        named = [
            f"{symbol} {entry['in_sample_fraction']:.1%} "
            f"({entry['first_in_sample']} → {entry['last_in_sample']} IST)"
            for symbol, entry in data.get("symbols", {}).items()
            if entry.get("in_sample_bars")
        ]
        more = f"; … {len(named) - 10} more symbols" if len(named) > 10 else ""
        overlaps = "; ".join(named[:10]) + more
        return [
            f"run {run.run_id} overlaps the model's training or validation data: {fraction:.1%} "
            f"of its symbol-bars are in-sample — {overlaps} (model {models})"
        ]
    return []


@dataclass
class BacktestEvidence:
    """The backtest side of a promotion, whatever produced it: a stored backtest run
    (``backtest_run_evidence``) — and a walk-forward study's stitched out-of-sample curve once
    studies are stored (a second loader returning this, with ``folds`` set). ``evaluate``
    applies the same gates to either, with the thresholds of ``PromotionSettings``."""

    kind: str  # what it is, for people: "backtest run", "walk-forward study"
    ref: str  # its id
    strategy_key: str
    sharpe: float | None
    max_drawdown: float | None
    #: (label, the engine settings it ran with) per run behind it: costs and slippage checked
    settings: list[tuple[str, dict[str, Any]]]
    problems: list[str] = field(default_factory=list)  # why it cannot be evidence at all
    in_sample: list[str] = field(default_factory=list)  # in_sample_reasons of its runs
    folds: tuple[int, int] | None = None  # (profitable, all) folds of a study; None for a run
    record: dict[str, Any] = field(default_factory=dict)  # what the promotion stores


def backtest_run_evidence(engine: Engine, run_id: str) -> BacktestEvidence:
    """A stored backtest run as backtest evidence."""
    run, status = _run(engine, run_id)
    config = json.loads(run.config_json)
    metrics = json.loads(run.metrics_json or "{}")
    problems = []
    if run.mode != "backtest" or status != "finished":
        problems.append(f"run {run.run_id} is not a finished backtest ({run.mode}, {status})")
    return BacktestEvidence(
        kind="backtest run", ref=run.run_id, strategy_key=strategy_key(config),
        sharpe=metrics.get("sharpe"), max_drawdown=metrics.get("max_drawdown"),
        settings=[(f"backtest {run.run_id}", config.get("settings", {}))], problems=problems,
        in_sample=in_sample_reasons(run),
        record={
            "run_id": run.run_id, "mode": run.mode, "status": status,
            "sharpe": metrics.get("sharpe"), "max_drawdown": metrics.get("max_drawdown"),
            "data_fingerprint": run.data_fingerprint, "code_version": run.code_version,
            "in_sample_fraction": run.in_sample_fraction,
        },
    )  # fmt: skip


def _backtest_gates(evidence: BacktestEvidence, rules: PromotionSettings) -> list[str]:
    """Sharpe, drawdown and (a study's) profitable folds: the thresholds live in
    ``PromotionSettings`` and nowhere else."""
    reasons = list(evidence.problems)
    what = "backtest" if evidence.folds is None else f"{evidence.kind} (stitched out-of-sample)"
    sharpe = evidence.sharpe if evidence.sharpe is not None else float("nan")
    if not sharpe > rules.min_backtest_sharpe:
        reasons.append(f"{what} Sharpe {sharpe:.2f} is not > {rules.min_backtest_sharpe}")
    drawdown = evidence.max_drawdown if evidence.max_drawdown is not None else float("nan")
    if not drawdown < rules.max_backtest_drawdown:
        reasons.append(
            f"{what} max drawdown {drawdown:.1%} is not < {rules.max_backtest_drawdown:.0%}"
        )
    if evidence.folds is not None:
        profitable, total = evidence.folds
        if not (total and profitable / total >= rules.min_profitable_folds):
            reasons.append(
                f"{profitable} of {total} folds profitable, fewer than "
                f"{rules.min_profitable_folds:.0%}"
            )
    return reasons


def cost_reasons(label: str, settings: dict[str, Any], live: EngineSettings) -> list[str]:
    """Why evidence run with ``settings`` carries less than the costs and slippage the live
    configuration will pay (none when it carries as much or more): with less, P&L and Sharpe
    are overstated."""
    costs = settings.get("costs", {})
    live_costs = live.costs.model_dump(mode="json")
    if costs.get("model") == "none" and live_costs["model"] != "none":
        return [
            f"{label} was run with --costs none (costs.model=none); live trading pays "
            f"{live_costs['model']} charges, so its P&L is overstated"
        ]
    if live_costs["model"] == "none":
        return []  # live pays nothing: evidence with charges is only more conservative
    # every rate (and the brokerage cap) is one where less understates what live will pay
    reasons = [
        f"{label} was run with costs.{name}={costs.get(name)!r}, less than the live "
        f"configuration's {value!r}"
        for name, value in live_costs.items()
        if isinstance(value, int | float) and float(costs.get(name, 0.0)) < value
    ]
    slippage = float(settings.get("execution", {}).get("slippage_bps", 0.0))
    if slippage < live.execution.slippage_bps:
        reasons.append(
            f"{label} was run with execution.slippage_bps={slippage:g} (--slippage-bps), less "
            f"than the live configuration's {live.execution.slippage_bps:g}"
        )
    return reasons


@dataclass
class PaperEvidence:
    """Forward paper trading on live prices: the sessions it traded by the wall clock."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)  # IST dates, over all runs
    pnl: float = 0.0
    curves: list[np.ndarray] = field(default_factory=list)
    settings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    accepted: list[Any] = field(default_factory=list)  # the stored runs that count


def _paper_run(engine: Engine, run_id: str, key: str, paper: PaperEvidence) -> list[str]:
    """Add one paper run to ``paper``; returns why it does not count (then nothing is added)."""
    run, status = _run(engine, run_id)
    if run.mode != "paper":
        return [f"run {run_id} is a {run.mode} run, not paper"]
    if status not in PAPER_EVIDENCE:
        return [
            f"paper run {run_id} is {status}; only {', '.join(sorted(PAPER_EVIDENCE))} paper "
            "runs count"
        ]
    config = json.loads(run.config_json)
    if strategy_key(config) != key:
        return [f"paper run {run_id} traded a different strategy configuration than the backtest"]
    if run.feed_kind != KITE_FEED:
        feed = (
            f"replayed stored bars (feed {run.feed_kind})"
            if run.feed_kind
            else "records no feed (stored before runs recorded theirs)"
        )
        return [
            f"paper run {run_id} {feed}: a historical replay, at any speed and on any data, is "
            "research, not paper evidence; paper evidence is forward paper trading on live "
            "prices (`trader paper --feed kite`), counted in the sessions it actually traded"
        ]
    _, equity = load_equity(engine, run_id)
    if equity.size == 0:
        return [f"paper run {run_id} has no equity points"]
    capital = config["settings"]["capital"]
    sessions = set(json.loads(run.sessions_json or "[]"))
    paper.accepted.append(run)
    paper.sessions |= sessions
    paper.pnl += float(equity[-1] - capital)
    paper.curves.append(np.concatenate([[capital], equity]))
    paper.settings.append((f"paper run {run_id}", config["settings"]))
    paper.runs.append(
        {
            "run_id": run_id, "feed": run.feed_kind, "sessions": len(sessions),
            "first_session": min(sessions, default=None),
            "last_session": max(sessions, default=None),
            "pnl": float(equity[-1] - capital), "in_sample_fraction": run.in_sample_fraction,
        }
    )  # fmt: skip
    return []


def evaluate(
    engine: Engine,
    backtest: str | BacktestEvidence,
    paper_ids: list[str],
    rules: PromotionSettings,
    allow_in_sample: str | None = None,
    live: EngineSettings | None = None,
) -> GateResult:
    """Check the gates on stored evidence; never raises for a failed gate, only for missing
    runs (or an override without a reason).

    ``backtest``: a backtest run's id, or evidence loaded otherwise (a study). ``live``: the
    configuration live trading will have (default: the ``live`` profile), whose costs and
    slippage every piece of evidence must carry. ``allow_in_sample``: the operator's reason for
    accepting evidence that is not out-of-sample for its model; the refusals it waives are
    recorded with it — it waives nothing else."""
    if allow_in_sample is not None and not allow_in_sample.strip():
        raise ValueError("--allow-in-sample needs the operator's reason (a non-empty text)")
    live = live if live is not None else load_settings("live")
    bt = (
        backtest
        if isinstance(backtest, BacktestEvidence)
        else backtest_run_evidence(engine, backtest)
    )
    result = GateResult(True)
    result.evidence["strategy_key"] = bt.strategy_key
    result.evidence["backtest"] = {"kind": bt.kind, "ref": bt.ref, **bt.record}
    result.reasons.extend(_backtest_gates(bt, rules))
    paper = PaperEvidence()
    for run_id in paper_ids:
        result.reasons.extend(_paper_run(engine, run_id, bt.strategy_key, paper))
    drawdown = max((float(drawdown_series(c).max()) for c in paper.curves), default=1.0)
    result.evidence["paper"] = {
        "runs": paper.runs,
        "trading_days": len(paper.sessions),
        "sessions": sorted(paper.sessions),
        "pnl": paper.pnl,
        "max_drawdown": drawdown,
    }
    fail = result.reasons.append
    if not paper_ids:
        fail("no paper runs given (--paper RUN_ID, repeatable)")
    if len(paper.sessions) < rules.min_paper_days:
        fail(
            f"paper trading on live prices covers {len(paper.sessions)} trading sessions (by the "
            f"wall clock), fewer than {rules.min_paper_days}"
        )
    if not paper.pnl > 0:
        fail(f"paper P&L {paper.pnl:,.2f} is not positive")
    if not drawdown < rules.max_paper_drawdown:
        fail(f"paper max drawdown {drawdown:.1%} is not < {rules.max_paper_drawdown:.0%}")
    for label, settings in [*bt.settings, *paper.settings]:
        result.reasons.extend(cost_reasons(label, settings, live))
    in_sample = [*bt.in_sample, *(r for run in paper.accepted for r in in_sample_reasons(run))]
    if allow_in_sample is not None:
        result.evidence["in_sample_override"] = {
            "reason": allow_in_sample.strip(),
            "operator": _operator(),
            "waived": in_sample,
        }
    else:
        result.reasons.extend(in_sample)
    result.evidence["rules"] = rules.model_dump()
    result.evidence["live_costs"] = {
        "costs": live.costs.model_dump(mode="json"),
        "slippage_bps": live.execution.slippage_bps,
    }
    result.approved = not result.reasons
    return result


def record(engine: Engine, result: GateResult, to_mode: str = "live") -> int:
    with engine.begin() as conn:
        row = conn.execute(
            insert(PromotionRow).values(
                created_at=datetime.now(UTC).isoformat(), to_mode=to_mode,
                strategy_key=result.evidence["strategy_key"], approved=result.approved,
                evidence_json=json.dumps({**result.evidence, "reasons": result.reasons}),
                operator=_operator(),
            )
        )  # fmt: skip
        key = row.inserted_primary_key
        if key is None:
            raise RuntimeError("the database returned no id for the promotion row")
        return int(key[0])


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def approved_promotion(engine: Engine, key: str, to_mode: str = "live") -> Any | None:
    with engine.connect() as conn:
        return conn.execute(
            select(PromotionRow)
            .where(PromotionRow.strategy_key == key, PromotionRow.to_mode == to_mode,
                   PromotionRow.approved.is_(True))
            .order_by(PromotionRow.id.desc())
        ).first()  # fmt: skip


class LiveRefused(ValueError):
    """``trader live`` will not start; the message says which gate."""


def check_live_allowed(
    engine: Engine, strategy_config: dict[str, Any], capital: float, rules: PromotionSettings,
    confirmed: bool,
) -> Any:  # fmt: skip
    """Every condition for live trading, checked before anything connects to a broker."""
    key = strategy_key(strategy_config)
    promotion = approved_promotion(engine, key)
    if promotion is None:
        raise LiveRefused(
            f"no approved promotion to live for this strategy configuration (key {key[:12]}); "
            "run `trader promote --to live --backtest RUN --paper RUN …` first"
        )
    if capital > rules.live_capital_cap:
        raise LiveRefused(
            f"--capital {capital:,.0f} exceeds the live capital cap "
            f"{rules.live_capital_cap:,.0f} (setting promotion.live_capital_cap)"
        )
    if not confirmed:
        raise LiveRefused(
            "live trading places real orders with real money: add --i-understand-this-is-live"
        )
    return promotion
