"""Studies in the database: a database made before the study tables gets them in place when
opened (its runs untouched), a fold row rewritten on a resume stays one row, and a lookup of a
SQLite file that does not exist is refused instead of creating it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select

from app.cli import main
from engine.store import studies
from engine.store.database import open_database
from engine.store.schema import Base, RunRow, StudyFoldRow

FOLD = {"index": 0, "train_start": "2021-01-01", "train_last": "2021-02-26 14:55",
        "test_start": "2021-03-01", "test_end": "2021-03-31"}  # fmt: skip


def test_a_database_made_before_studies_gets_the_tables_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    old = create_engine(f"sqlite:///{path}")
    Base.metadata.tables["runs"].create(old)  # what an older version made: runs, no studies
    with old.begin() as conn:
        conn.execute(
            RunRow.__table__.insert().values(
                run_id="r1", mode="backtest", strategy="sma_cross", status="finished",
                created_at="2021", config_json="{}", code_version="v", data_fingerprint="f",
                bars_processed=0,
            )
        )  # fmt: skip
    assert not inspect(old).has_table("studies")
    assert main(["studies", "list", "--db", str(path)]) == 0
    assert "no studies stored" in capsys.readouterr().out
    engine = open_database(str(path))
    assert inspect(engine).has_table("studies") and inspect(engine).has_table("study_folds")
    with engine.connect() as conn:
        assert conn.execute(select(RunRow.run_id)).scalars().all() == ["r1"]


def test_a_fold_saved_again_on_a_resume_stays_one_row(tmp_path: Path) -> None:
    engine = open_database(str(tmp_path / "s.db"))
    studies.start_study(
        engine, "wf-1", strategy="sma_cross", spec={"train": "2M"}, folds=[FOLD],
        out_dir=str(tmp_path), code_version="v", data_fingerprint="f",
    )  # fmt: skip
    for total_return in (0.01, 0.02):
        studies.save_fold(engine, "wf-1", FOLD, 0, {}, None, {"backtest": {"r": total_return}},
                          {"ts": [1], "equity": [1.0]})  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(StudyFoldRow)).scalar() == 1
    study = studies.load_study(engine, "wf-1")
    assert study["status"] == "running" and study["folds"][0]["metrics"]["backtest"]["r"] == 0.02
    studies.start_study(
        engine, "wf-1", strategy="sma_cross", spec={"train": "2M"}, folds=[FOLD],
        out_dir=str(tmp_path), code_version="v", data_fingerprint="f",
    )  # fmt: skip
    assert len(studies.load_study(engine, "wf-1")["folds"]) == 1  # a resume keeps the folds


def test_a_lookup_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    assert "no database at" in (studies.missing_database(str(missing)) or "")
    assert studies.missing_database(f"sqlite:///{missing}") is not None
    assert studies.missing_database("postgresql+psycopg://u@h/db") is None
    assert not missing.exists()
