"""Walk-forward studies in the database: created when a study starts, a fold row written as
each fold finishes (so an interrupted study keeps what it finished), the stitched results when
it ends. Readers (``trader studies``, ``trader promote --study``) get plain dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import make_url

from engine.store.database import database_url
from engine.store.schema import StudyFoldRow, StudyRow


def _now() -> str:
    return datetime.now(UTC).isoformat()


def missing_database(url: str | None) -> str | None:
    """For a lookup: a reason when ``url`` names a SQLite file that does not exist (a lookup
    must never create a database), else None."""
    parsed = make_url(database_url(url))
    sqlite = parsed.get_backend_name() == "sqlite"
    on_file = sqlite and parsed.database not in (None, "", ":memory:")
    if on_file and not Path(str(parsed.database)).exists():
        return f"no database at {parsed.database} (--db): nothing is stored there"
    return None


def start_study(
    engine: Engine, study_id: str, *, strategy: str, spec: dict[str, Any],
    folds: list[dict[str, Any]], out_dir: str, code_version: str, data_fingerprint: str,
) -> None:  # fmt: skip
    """Insert the study (status running), or mark a resumed one running again."""
    with engine.begin() as conn:
        exists = conn.execute(
            select(StudyRow.study_id).where(StudyRow.study_id == study_id)
        ).first()
        if exists is not None:
            conn.execute(
                update(StudyRow)
                .where(StudyRow.study_id == study_id)
                .values(status="running", finished_at=None, error=None)
            )
            return
        conn.execute(
            insert(StudyRow).values(
                study_id=study_id, kind="walkforward", strategy=strategy, status="running",
                created_at=_now(), spec_json=json.dumps(spec, sort_keys=True),
                folds_json=json.dumps(folds), out_dir=out_dir, code_version=code_version,
                data_fingerprint=data_fingerprint,
            )
        )  # fmt: skip


def save_fold(
    engine: Engine, study_id: str, fold: dict[str, Any], point: int, params: dict[str, Any],
    data_seen: str | None, metrics: dict[str, Any], equity: dict[str, list[Any]],
) -> None:  # fmt: skip
    """Write (or rewrite, on a resume) one fold × point."""
    with engine.begin() as conn:
        conn.execute(
            delete(StudyFoldRow).where(
                StudyFoldRow.study_id == study_id,
                StudyFoldRow.fold == fold["index"],
                StudyFoldRow.point == point,
            )
        )
        conn.execute(
            insert(StudyFoldRow).values(
                study_id=study_id, fold=fold["index"], point=point,
                params_json=json.dumps(params, sort_keys=True),
                train_start=fold["train_start"], train_last=fold["train_last"],
                test_start=fold["test_start"], test_end=fold["test_end"], data_seen=data_seen,
                metrics_json=json.dumps(metrics), equity_json=json.dumps(equity),
            )
        )  # fmt: skip


def finish_study(
    engine: Engine, study_id: str, status: str, results: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:  # fmt: skip
    values: dict[str, Any] = {"status": status, "finished_at": _now(), "error": error}
    if results is not None:
        values["results_json"] = json.dumps(results)
    with engine.begin() as conn:
        conn.execute(update(StudyRow).where(StudyRow.study_id == study_id).values(**values))


def list_studies(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(StudyRow).order_by(StudyRow.created_at.desc()).limit(limit)
        ).all()
    return [_study(r) for r in rows]


def load_study(engine: Engine, study_id: str) -> dict[str, Any]:
    """The study with its fold rows (ordered by point, fold); ValueError naming it if absent."""
    with engine.connect() as conn:
        row = conn.execute(select(StudyRow).where(StudyRow.study_id == study_id)).first()
        if row is None:
            raise ValueError(f"no study {study_id!r} in {engine.url}")
        folds = conn.execute(
            select(StudyFoldRow)
            .where(StudyFoldRow.study_id == study_id)
            .order_by(StudyFoldRow.point, StudyFoldRow.fold)
        ).all()
    out = _study(row)
    out["folds"] = [_fold(f) for f in folds]
    return out


def _fold(f: Any) -> dict[str, Any]:
    return {
        "fold": f.fold, "point": f.point, "params": json.loads(f.params_json),
        "train_start": f.train_start, "train_last": f.train_last,
        "test_start": f.test_start, "test_end": f.test_end, "data_seen": f.data_seen,
        "metrics": json.loads(f.metrics_json), "equity": json.loads(f.equity_json),
    }  # fmt: skip


def _study(r: Any) -> dict[str, Any]:
    return {
        "study_id": r.study_id, "kind": r.kind, "strategy": r.strategy, "status": r.status,
        "created_at": r.created_at, "finished_at": r.finished_at,
        "spec": json.loads(r.spec_json), "planned_folds": json.loads(r.folds_json),
        "out_dir": r.out_dir, "code_version": r.code_version,
        "data_fingerprint": r.data_fingerprint,
        "results": json.loads(r.results_json) if r.results_json else None, "error": r.error,
    }  # fmt: skip
