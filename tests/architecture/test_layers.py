"""Imports point down the layers of DESIGN.md — checked on the real tree on every test run."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.layers import LAYERS, violations
from tests.support.paths import ROOT


def test_the_source_tree_imports_only_downward() -> None:
    found = violations(ROOT)
    assert not found, "upward or sideways imports:\n" + "\n".join(map(str, found))


def test_every_layered_package_exists() -> None:
    """A renamed package must not silently drop out of the check."""
    missing = [p for p in LAYERS if not (ROOT / p / "__init__.py").exists()]
    assert not missing


def test_a_deliberate_upward_import_is_caught(tmp_path: Path) -> None:
    """Copy the real tree, add one upward import deep inside a function, and the check fails."""
    for package in LAYERS:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    assert violations(tmp_path) == []
    portfolio = tmp_path / "engine" / "portfolio.py"
    portfolio.write_text(
        portfolio.read_text() + "\n\ndef _late() -> None:\n    from app.cli import main  # noqa\n"
    )
    sideways = tmp_path / "risk" / "gates.py"
    sideways.write_text(sideways.read_text() + "\nimport brokers.simulated  # noqa\n")
    found = violations(tmp_path)
    assert [(str(v.path), v.importer, v.imported) for v in found] == [
        ("engine/portfolio.py", "engine", "app.cli"),
        ("risk/gates.py", "risk", "brokers.simulated"),
    ]
    assert "imports must point down" in str(found[0])
