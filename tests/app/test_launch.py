"""How a run was started is stored with it (``app/commands/launch.py``); a run stored before
that was recorded keeps the old rule (flags given again), and a typo'd id is named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import update

from app.cli import build_parser, main
from app.commands.launch import apply_launch
from engine.store.database import open_database
from engine.store.schema import RunRow


def test_launch_is_stored_and_an_older_run_without_it_keeps_its_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    demo = ["demo", "--strategy", "sma_cross", "--days", "2", "--symbols", "2", "--seed", "3"]
    assert main([*demo, "--db", str(db), "--no-progress", "--end-date", "2024-01-31"]) == 0
    found = re.search(r"trader runs show (\w+)", capsys.readouterr().out)
    assert found is not None
    run_id = found.group(1)
    engine = open_database(str(db))
    with engine.connect() as conn:
        launch = json.loads(conn.execute(RunRow.__table__.select()).one().launch_json)
    assert launch["seed"] == 3 and launch["end_date"] == "2024-01-31"
    assert launch["strategy"] == "sma_cross" and "db" not in launch  # per process, not per run

    with engine.begin() as conn:
        conn.execute(update(RunRow).values(launch_json=None))
    args = build_parser().parse_args(["paper", "--resume", run_id, "--db", str(db), "--seed", "9"])
    apply_launch(args, "paper")
    assert args.seed == 9 and args.feed is None  # nothing stored: the flags as given

    args = build_parser().parse_args(["paper", "--resume", "nosuchrun", "--db", str(db)])
    with pytest.raises(ValueError, match="no run 'nosuchrun'"):
        apply_launch(args, "paper")
