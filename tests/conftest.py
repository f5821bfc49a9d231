"""Shared fixtures. Real data lives in ../shared beside the repository (never copied here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log import RootHandler
from tests.support.paths import BANKNIFTY, KITE_MOCKS, NIFTY, NSE_DIR, ROOT, SHARED

__all__ = ["BANKNIFTY", "KITE_MOCKS", "NIFTY", "NSE_DIR", "ROOT", "SHARED"]


@pytest.fixture(scope="session")
def nifty_path() -> Path:
    if not NIFTY.exists():
        pytest.fail(f"{NIFTY} is missing: the shared data must sit at ../shared beside the repo")
    return NIFTY


@pytest.fixture(autouse=True)
def _root_logging_stays_per_test() -> Iterator[None]:
    """``configure_logging`` (every CLI call) sets the root logger's handler and level for the
    process; take them off again, so one test's set-up does not reach the next (a fake Kite
    server's INFO lines, say, on the terminal between tests)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
