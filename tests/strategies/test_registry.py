"""Strategies: built-ins listed with their parameters, and a user's own strategy — the README's
worked example, taken from the README itself — found in TRADER_STRATEGY_PATH and run on the real
NSE bars without any edit of the engine; entry points of installed packages too."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from app.cli import main
from strategies import registry
from tests.support.paths import ROOT


def readme_example() -> str:
    """The ``python`` block of README's "Your own strategy" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own strategy") :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "README lost its worked strategy example"
    return found.group(1)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "my_strategies"
    folder.mkdir()
    (folder / "breakout.py").write_text(readme_example())
    monkeypatch.setenv(registry.PATH_ENV, str(folder))
    return folder


def test_strategies_lists_every_parameter_with_type_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["strategies", "--json"]) == 0
    listed = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert {"sma_cross", "model"} <= listed.keys()
    sma = {p["name"]: (p["type"], p["default"]) for p in listed["sma_cross"]["params"]}
    assert sma == {
        "fast": ("int", 10), "slow": ("int", 30), "qty": ("int", 1), "sizing": ("str", "qty"),
        "notional": ("float", 100_000.0), "fraction": ("float", 0.1),
    }  # fmt: skip
    assert "crossover" in listed["sma_cross"]["description"]
    assert listed["model"]["source"] == "built-in"
    assert ("entry_threshold", "float", 0.5) in {
        (p["name"], p["type"], p["default"]) for p in listed["model"]["params"]
    }


def test_the_readme_example_runs_from_the_plugin_path(
    plugin_dir: Path, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["strategies"]) == 0
    listing = capsys.readouterr().out
    assert f"breakout  ({plugin_dir / 'breakout.py'})" in listing
    assert "--param lookback=…  int, default 20" in listing
    out = tmp_path / "breakout.json"
    argv = ["backtest", "--data", str(nifty_path), "--strategy", "breakout"]
    rc = main([*argv, "--param", "lookback=30", "--end-date", "2021-03-31", "--no-db",
               "--no-progress", "--json", str(out)])  # fmt: skip
    assert rc == 0
    result = json.loads(out.read_text())
    assert len(result["trades"]) > 5
    assert {t["exit_reason"] for t in result["trades"]} & {"new low", "end of data"}
    # parameters are validated like a built-in's
    assert main([*argv, "--param", "lookback=1", "--no-db"]) == 2
    assert "parameter lookback=1 must be ≥ 2" in capsys.readouterr().err


def test_a_plugin_cannot_replace_a_built_in(plugin_dir: Path) -> None:
    shadow = readme_example().replace('name = "breakout"', 'name = "sma_cross"')
    (plugin_dir / "shadow.py").write_text(shadow)
    assert registry.available()["sma_cross"] == registry.BUILT_IN["sma_cross"]
    assert registry.strategy_class("sma_cross").__module__ == "strategies.sma_cross"


def test_a_broken_plugin_is_named_not_a_traceback(
    plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (plugin_dir / "broken.py").write_text("import not_a_module_anywhere\n")
    assert main(["strategies"]) == 2
    err = capsys.readouterr().err
    assert str(plugin_dir / "broken.py") in err and "not_a_module_anywhere" in err
    assert "Traceback" not in err


def test_installed_packages_register_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package declaring ``[project.entry-points."nse_trader.strategies"]`` is found: a real
    distribution on sys.path (dist-info with entry_points.txt), as pip would install it."""
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text(
        readme_example().replace('name = "breakout"', 'name = "packaged"')
    )
    info = tmp_path / "my_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\npackaged = my_pkg:Breakout\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.available()["packaged"] == "my_pkg:Breakout"
    strategy = registry.make_strategy("packaged", {"lookback": "5"})
    assert strategy.name == "packaged" and strategy.params.lookback == 5  # type: ignore[attr-defined]
    sys.modules.pop("my_pkg", None)
