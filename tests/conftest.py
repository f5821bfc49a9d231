"""Shared fixtures. Real data lives in ../shared beside the repository (never copied here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import BANKNIFTY, KITE_MOCKS, NIFTY, NSE_DIR, ROOT, SHARED

__all__ = ["BANKNIFTY", "KITE_MOCKS", "NIFTY", "NSE_DIR", "ROOT", "SHARED"]


@pytest.fixture(scope="session")
def nifty_path() -> Path:
    if not NIFTY.exists():
        pytest.fail(f"{NIFTY} is missing: the shared data must sit at ../shared beside the repo")
    return NIFTY
