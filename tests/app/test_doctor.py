"""``trader doctor``: the default locations, what the CPU can do, which Kite credentials exist —
never a credential's value, never a database created by looking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.cli import main
from models.precision import precision_support

KEY, TOKEN = "k3y-value-xyz", "t0ken-value-abc"


def test_doctor_reports_locations_cpu_and_credentials_without_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "kite.env"
    secrets.write_text(f"KITE_ACCESS_TOKEN={TOKEN}\n")
    os.chmod(secrets, 0o600)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KITE_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("KITE_API_KEY", KEY)
    monkeypatch.delenv("KITE_API_SECRET", raising=False)
    monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("TRADER_DB", raising=False)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))

    assert main(["doctor", "--json"]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and TOKEN not in out
    report = json.loads(out)
    paths = report["paths"]
    assert paths["database"] == f"sqlite:///{tmp_path / 'trader.db'}"
    assert paths["database_exists"] is False and not (tmp_path / "trader.db").exists()
    assert paths["kite_secrets_file"] == str(secrets)
    assert paths["history_cache"].startswith(str(tmp_path))
    assert report["kite_credentials"] == {
        "KITE_API_KEY": "environment",
        "KITE_API_SECRET": "missing",
        "KITE_ACCESS_TOKEN": "secrets file",
    }
    bf16 = precision_support("bf16", "cpu")
    assert report["machine"]["bf16_inference"].startswith(
        "available" if bf16.available else "not available"
    )
    assert report["versions"]["torch"].startswith("2.")

    assert main(["doctor"]) == 0  # the same, for people
    text = capsys.readouterr().out
    assert "KITE_ACCESS_TOKEN" in text and TOKEN not in text and KEY not in text
    assert not list(tmp_path.glob("*.db"))
