"""Where the shared material sits: ``../shared`` beside the repository (never copied into it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
NSE_DIR = SHARED / "data" / "nse"
NIFTY = NSE_DIR / "NIFTY50_1min_2021.parquet"
BANKNIFTY = NSE_DIR / "BANKNIFTY_1min_2021.parquet"
KITE_MOCKS = SHARED / "fixtures" / "kite-mocks"
