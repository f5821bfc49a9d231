"""Where runs live: one default database (``config/paths.py``) that every command uses, a demo
whose printed next step works as printed, and lookups that never create a database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.cli import main

DEMO = ["demo", "--strategy", "sma_cross", "--days", "3", "--symbols", "2", "--no-progress"]


def test_the_demos_printed_next_step_finds_its_run(
    _trader_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    assert main(DEMO) == 0
    out = capsys.readouterr().out
    printed = re.search(r"\(trader (runs show \w+)\)", out)
    assert printed is not None, out
    db = _trader_home / "trader.db"
    assert f"stored in sqlite:///{db}" in out and db.exists()
    assert main(printed.group(1).split()) == 0  # exactly as printed: no --db
    shown = capsys.readouterr().out
    assert printed.group(1).split()[-1] in shown and "total return" in shown
    assert not list(tmp_path.iterdir())


def test_a_run_stored_elsewhere_prints_the_db_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mine.db"
    assert main([*DEMO, "--db", str(db)]) == 0
    printed = re.search(r"\(trader (runs show \w+ --db \S+)\)", capsys.readouterr().out)
    assert printed is not None
    assert main(printed.group(1).split()) == 0


def test_lookups_never_create_a_database(
    _trader_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"no runs stored in sqlite:///{_trader_home / 'trader.db'} "
        "(the database does not exist yet)"
    )
    elsewhere = tmp_path / "nothing-here.db"
    assert main(["runs", "show", "abc123", "--db", str(elsewhere)]) == 2
    assert f"no database at sqlite:///{elsewhere}" in capsys.readouterr().err
    assert (
        main(["report", "abc123", "--db", str(elsewhere), "--out", str(tmp_path / "r.html")]) == 2
    )
    assert main(["runs", "trades", "abc123", "--db", str(elsewhere)]) == 2
    assert not elsewhere.exists() and not (_trader_home / "trader.db").exists()


def test_paths_lists_every_default_location_under_trader_home(
    _trader_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["paths", "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert paths["trader_home"] == str(_trader_home)
    assert paths["database"] == f"sqlite:///{_trader_home / 'trader.db'}"
    assert paths["database_exists"] is False
    for key in ("history_cache", "prediction_cache", "demo_model"):
        assert paths[key].startswith(str(_trader_home)), key
    assert paths["control_token"].endswith("api-token-<PORT>")
    assert paths["kite_secrets_file"].endswith("kite.env")
    assert not list(_trader_home.iterdir())  # describing locations creates none of them
