"""Shared fixtures. Real data lives in ../shared beside the repository (never copied here)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NSE_DIR = SHARED / "data" / "nse"
NIFTY = NSE_DIR / "NIFTY50_1min_2021.parquet"
BANKNIFTY = NSE_DIR / "BANKNIFTY_1min_2021.parquet"
KITE_MOCKS = SHARED / "fixtures" / "kite-mocks"


@pytest.fixture(scope="session")
def nifty_path() -> Path:
    if not NIFTY.exists():
        pytest.fail(f"{NIFTY} is missing: the shared data must sit at ../shared beside the repo")
    return NIFTY
