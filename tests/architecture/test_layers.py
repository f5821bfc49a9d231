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


def test_tests_mirror_the_packages() -> None:
    """tests/<package>/<sub>/ holds the tests of <package>/<sub>/: a newcomer finds a module's
    tests by its path (the architecture checks and test support are the only other folders)."""
    tests = ROOT / "tests"
    own = {tests / "architecture", tests / "support", tests / "golden"}
    strays = [
        str(folder.relative_to(ROOT))
        for folder in sorted({p.parent for p in tests.rglob("test_*.py")})
        if folder != tests
        and not any(folder.is_relative_to(o) for o in own)
        and not (ROOT / folder.relative_to(tests) / "__init__.py").exists()
    ]
    assert not strays, f"test folders with no package of the same path: {strays}"


def test_the_wheel_holds_every_package_and_no_test_double() -> None:
    """What ``pip install`` ships is what setuptools finds with the project's own settings: every
    layered package folder (a folder without ``__init__.py`` would silently be left out), and
    none of the test doubles (the fake Kite server, ticker and candles live under tests/)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = set(find_packages(str(ROOT), **config["tool"]["setuptools"]["packages"]["find"]))
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for package in LAYERS
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert folders <= found, f"left out of the wheel: {sorted(folders - found)}"
    assert not [name for name in found if name.split(".")[0] not in LAYERS]
    assert not any("fake" in name for name in found)
