"""Paper → live promotion gates (the seed's rule) and their record.

A strategy configuration — strategy, parameters and model hash, *not* capital or mode — is
identified by ``strategy_key``. It may go live only with a stored, approved promotion for that
exact key, taken on a finished backtest (Sharpe > 1.5, max drawdown < 20%) and paper runs of the
same key covering ≥ 20 trading days with positive P&L and max drawdown < 20% (all settings).
Refusals are recorded too, with the same evidence, so the history of attempts is auditable.

The backtest evidence may instead be a walk-forward study (``--study``): the same Sharpe and
drawdown thresholds then apply to its stitched out-of-sample curve, and at least
``min_profitable_folds`` of its folds must have made money. A study of a parameter grid, or
one run without costs, is refused. A model study validates a training recipe (each fold
trained its own models before its test window); the model going live is the paper runs'.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from config.sessions import local_days
from config.settings import PromotionSettings
from engine.metrics import drawdown_series
from engine.store.queries import load_equity, run_lease, runs_query
from engine.store.schema import PromotionRow, RunRow
from engine.store.studies import load_study


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


def evaluate(
    engine: Engine,
    backtest_id: str | None,
    paper_ids: list[str],
    rules: PromotionSettings,
    allow_in_sample: str | None = None,
    study_id: str | None = None,
) -> GateResult:
    """Check the gates on stored runs; never raises for a failed gate, only for missing runs
    (or an override without a reason).

    The backtest evidence is a finished backtest run (``backtest_id``) or a walk-forward study
    (``study_id``), whose stitched out-of-sample curve the backtest gates apply to.
    ``allow_in_sample``: the operator's reason for accepting evidence that is not out-of-sample
    for its model; the refusals it waives are recorded with it."""
    if allow_in_sample is not None and not allow_in_sample.strip():
        raise ValueError("--allow-in-sample needs the operator's reason (a non-empty text)")
    if (backtest_id is None) == (study_id is None):
        raise ValueError("give the backtest evidence as --backtest RUN_ID or --study STUDY_ID")
    result = GateResult(True)
    fail = result.reasons.append
    evidence_runs: list[Any] = []
    if study_id is not None:
        same_strategy = _study_evidence(engine, study_id, paper_ids, rules, result)
        key = result.evidence["strategy_key"]
    else:
        assert backtest_id is not None
        backtest, backtest_status = _run(engine, backtest_id)
        evidence_runs.append(backtest)
        key = strategy_key(json.loads(backtest.config_json))
        metrics = json.loads(backtest.metrics_json or "{}")
        result.evidence["strategy_key"] = key
        result.evidence["backtest"] = {
            "run_id": backtest.run_id, "mode": backtest.mode, "status": backtest_status,
            "sharpe": metrics.get("sharpe"), "max_drawdown": metrics.get("max_drawdown"),
            "data_fingerprint": backtest.data_fingerprint,
            "code_version": backtest.code_version,
            "in_sample_fraction": backtest.in_sample_fraction,
        }  # fmt: skip
        if backtest.mode != "backtest" or backtest_status != "finished":
            fail(
                f"run {backtest.run_id} is not a finished backtest "
                f"({backtest.mode}, {backtest_status})"
            )
        _curve_gates(metrics, rules, "backtest", fail)

        def same_strategy(config: dict[str, Any]) -> bool:
            return strategy_key(config) == key

    days: set[int] = set()
    pnl = 0.0
    curves: list[np.ndarray] = []
    papers = []
    for run_id in paper_ids:
        paper, paper_status = _run(engine, run_id)
        if paper.mode != "paper":
            fail(f"run {run_id} is a {paper.mode} run, not paper")
            continue
        if paper_status not in PAPER_EVIDENCE:
            fail(
                f"paper run {run_id} is {paper_status}; only "
                f"{', '.join(sorted(PAPER_EVIDENCE))} paper runs count"
            )
            continue
        if not same_strategy(json.loads(paper.config_json)):
            fail(f"paper run {run_id} traded a different strategy configuration than the backtest")
            continue
        evidence_runs.append(paper)
        ts, equity = load_equity(engine, run_id)
        if equity.size == 0:
            fail(f"paper run {run_id} has no equity points")
            continue
        capital = json.loads(paper.config_json)["settings"]["capital"]
        days |= set(local_days(ts).tolist())
        pnl += float(equity[-1] - capital)
        curves.append(np.concatenate([[capital], equity]))
        papers.append(
            {
                "run_id": run_id,
                "days": int(np.unique(local_days(ts)).size),
                "pnl": float(equity[-1] - capital),
                "in_sample_fraction": paper.in_sample_fraction,
            }
        )
    drawdown = max((float(drawdown_series(c).max()) for c in curves), default=1.0)
    result.evidence["paper"] = {
        "runs": papers,
        "trading_days": len(days),
        "pnl": pnl,
        "max_drawdown": drawdown,
    }
    if not paper_ids:
        fail("no paper runs given (--paper RUN_ID, repeatable)")
    if len(days) < rules.min_paper_days:
        fail(f"paper trading covers {len(days)} trading days, fewer than {rules.min_paper_days}")
    if not pnl > 0:
        fail(f"paper P&L {pnl:,.2f} is not positive")
    if not drawdown < rules.max_paper_drawdown:
        fail(f"paper max drawdown {drawdown:.1%} is not < {rules.max_paper_drawdown:.0%}")
    in_sample = [reason for run in evidence_runs for reason in in_sample_reasons(run)]
    if allow_in_sample is not None:
        result.evidence["in_sample_override"] = {
            "reason": allow_in_sample.strip(),
            "operator": _operator(),
            "waived": in_sample,
        }
    else:
        result.reasons.extend(in_sample)
    result.evidence["rules"] = rules.model_dump()
    result.approved = not result.reasons
    return result


def _curve_gates(
    metrics: dict[str, Any], rules: PromotionSettings, what: str, fail: Callable[[str], None]
) -> None:
    """The backtest gates (one set of thresholds: ``promotion.*`` settings), on a backtest run's
    curve or a study's stitched out-of-sample curve."""
    if not (metrics.get("sharpe", -np.inf) > rules.min_backtest_sharpe):
        fail(
            f"{what} Sharpe {metrics.get('sharpe', float('nan')):.2f} is not > "
            f"{rules.min_backtest_sharpe}"
        )
    if not (metrics.get("max_drawdown", np.inf) < rules.max_backtest_drawdown):
        fail(
            f"{what} max drawdown {metrics.get('max_drawdown', float('nan')):.1%} is not < "
            f"{rules.max_backtest_drawdown:.0%}"
        )


#: strategy parameters that say how a model is run, not which decisions it makes
RUNTIME_PARAMS = frozenset({"model", "threads", "cache_dir", "device", "precision"})


def _study_evidence(
    engine: Engine, study_id: str, paper_ids: list[str], rules: PromotionSettings,
    result: GateResult,
) -> Callable[[dict[str, Any]], bool]:  # fmt: skip
    """A walk-forward study as the backtest evidence: finished, one parameter point (choosing
    the best of a grid on its out-of-sample curve would make that curve in-sample), costs on,
    every fold's models trained before its test window, and the backtest gates plus the
    profitable-fold gate on the stitched out-of-sample curve. Returns how a paper run is
    matched: the same strategy configuration, or — for a model study, whose folds each trained
    their own models — the same strategy and decision parameters (the recipe was validated)."""
    fail = result.reasons.append
    study = load_study(engine, study_id)
    results = study["results"] or {}
    point = results.get("0", {})
    metrics = point.get("metrics", {})
    config = point.get("strategy_config") or {"strategy": study["strategy"], "params": {}}
    trains_models = bool(point.get("trains_models"))
    key = strategy_key(config)
    if trains_models and paper_ids:  # the configuration going live is the paper runs' model
        first, _ = _run(engine, paper_ids[0])
        key = strategy_key(json.loads(first.config_json))
    folds = int(metrics.get("folds", 0))
    profitable = int(metrics.get("profitable_folds", 0))
    result.evidence["strategy_key"] = key
    result.evidence["study"] = {
        "study_id": study_id, "status": study["status"], "strategy": study["strategy"],
        "folds": folds, "profitable_folds": profitable, "sharpe": metrics.get("sharpe"),
        "max_drawdown": metrics.get("max_drawdown"), "total_return": metrics.get("total_return"),
        "data_fingerprint": study["data_fingerprint"], "code_version": study["code_version"],
        "curve": "stitched out-of-sample", "trains_models": trains_models,
    }  # fmt: skip
    if study["status"] != "finished":
        fail(f"study {study_id} is not finished ({study['status']})")
    if len(results) != 1:
        fail(
            f"study {study_id} has {len(results)} parameter points: the best of a grid, chosen "
            "on its out-of-sample curve, is in-sample evidence; run a study of the chosen point"
        )
    costs = study["spec"].get("settings", {}).get("costs", {}).get("model")
    if costs == "none":
        fail(f"study {study_id} ran without costs (--costs none); evidence must pay costs")
    for fold in study["folds"]:
        measured = fold["metrics"].get("in_sample_fraction")
        if measured:
            fail(
                f"study {study_id} fold {fold['fold']}: {measured:.1%} of its test window's "
                "symbol-bars are in its models' training or validation data"
            )
        if fold["data_seen"] is not None and fold["train_last"][:10] >= fold["test_start"]:
            fail(
                f"study {study_id} fold {fold['fold']}: its models trained up to "
                f"{fold['train_last']}, not before its test window {fold['test_start']}"
            )
    _curve_gates(metrics, rules, "study stitched out-of-sample", fail)
    if not folds or profitable / folds < rules.min_profitable_folds:
        fail(
            f"study {study_id}: {profitable} of {folds} folds profitable, fewer than "
            f"{rules.min_profitable_folds:.0%}"
        )
    decision = _decision_params(config)

    def same_strategy(paper_config: dict[str, Any]) -> bool:
        if not trains_models:
            return strategy_key(paper_config) == strategy_key(config)
        return _decision_params(paper_config) == decision and "model_hash" in paper_config

    return same_strategy


def _decision_params(config: dict[str, Any]) -> tuple[Any, str]:
    params = {k: v for k, v in config.get("params", {}).items() if k not in RUNTIME_PARAMS}
    return config.get("strategy"), json.dumps(params, sort_keys=True, default=str)


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
