"""The dashboard in a real headless Chromium (Debian's, driven by playwright) against a running
``trader paper`` daemon: the page loads and shows the mode, its numbers match the database, and
the kill switch — token typed into the page — halts trading and flattens.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; another binary via ``$CHROMIUM``) and
the ``playwright`` Python package; it never downloads browsers (no ``playwright install``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, select

from engine.store.schema import EquityRow, PositionRow, RiskEventRow, RunRow
from tests.support.browser import headless_chromium
from tests.support.paths import ROOT

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[bytes]
    url: str
    db_url: str
    token_file: Path
    logs: tuple[Path, Path]

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)

    def stored(self) -> dict[str, Any] | None:
        """The run row, positions and risk events, read straight from the database."""
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                run = conn.execute(select(RunRow)).first()
                if run is None:
                    return None
                positions = conn.execute(
                    select(PositionRow).where(PositionRow.run_id == run.run_id)
                ).all()
                point = conn.execute(
                    select(EquityRow.equity, EquityRow.drawdown).where(
                        EquityRow.run_id == run.run_id, EquityRow.ts == run.last_bar_ts
                    )
                ).first()
                risk = conn.execute(
                    select(RiskEventRow.gate, RiskEventRow.state).where(
                        RiskEventRow.run_id == run.run_id
                    )
                ).all()
        except Exception:  # the daemon has not created its tables yet
            return None
        finally:
            engine.dispose()
        return {
            "run": run,
            "equity": point,
            "positions": positions,
            "risk": [tuple(r) for r in risk],
        }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    port = free_port()
    db = tmp_path / "dash.db"
    # no TRADER_TOKEN: the daemon generates one into $XDG_STATE_HOME/nse-trader/api-token-PORT
    env = {k: v for k, v in os.environ.items() if k not in ("TRADER_TOKEN", "TRADER_TOKEN_FILE")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    token_file = tmp_path / "state" / "nse-trader" / f"api-token-{port}"
    logs = (tmp_path / "stdout.txt", tmp_path / "stderr.txt")
    # one synthetic symbol, sma_cross(2, 5): a position within a few bars; 5-minute bars at
    # 600x arrive every 0.5 s
    command = [
        sys.executable, "-m", "app.cli", "paper", "--feed", "replay:synthetic",
        "--symbols", "1", "--days", "2", "--interval", "5minute", "--speed", "600x",
        "--param", "fast=2", "--param", "slow=5", "--param", "qty=1",
        "--db", str(db), "--port", str(port),
    ]  # fmt: skip
    with logs[0].open("wb") as out, logs[1].open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
    running = RunningDaemon(proc, f"http://127.0.0.1:{port}/", f"sqlite:///{db}", token_file, logs)

    def up() -> bool:
        assert proc.poll() is None, running.output()
        try:
            with urllib.request.urlopen(running.url + "api/state", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for("the daemon's HTTP API", up, timeout=30)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page() -> Iterator[Any]:
    with headless_chromium() as browser:
        yield browser.new_page()


def amount(text: str) -> float:
    """'₹10,00,000.00' / '-1,234.50' / '1.25%' → float as displayed."""
    cleaned = text.replace("₹", "").replace(",", "").replace("%", "").replace("−", "-")
    return float(cleaned.strip())


READ_PAGE = """() => {
  const text = (id) => document.getElementById(id).textContent;
  return {
    ts: document.getElementById('last-bar').dataset.ts,
    equity: text('equity'), cash: text('cash'), drawdown: text('drawdown'),
    state: text('state'), mode: text('mode'), run_id: text('run-id'),
    positions: [...document.querySelectorAll('#positions tbody tr[data-symbol]')].map((tr) => [
      tr.dataset.symbol, tr.querySelector('.qty').textContent,
      tr.querySelector('.avg').textContent, tr.querySelector('.last').textContent]),
  };
}"""


def test_dashboard_matches_the_database_and_its_kill_switch_flattens(
    daemon: RunningDaemon, page: Any
) -> None:
    token = daemon.token_file.read_text().strip()
    assert (daemon.token_file.stat().st_mode & 0o777) == 0o600
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(daemon.url + "?refresh_ms=200")
    sync_api.expect(page.locator("#mode")).to_have_text("PAPER")
    sync_api.expect(page.locator("#state")).to_have_text("ACTIVE")
    # a replay's time is the bars' time: not a lag of years since 2021
    sync_api.expect(page.locator("#feed-lag")).to_have_text("replay (bar time)")
    assert token not in page.content()

    def page_agrees_with_db() -> tuple[dict[str, Any], dict[str, Any]] | None:
        shown = page.evaluate(READ_PAGE)
        db = daemon.stored()
        # compare at one bar: the page and the database must be at the same committed bar
        if not shown["positions"] or db is None or str(db["run"].last_bar_ts) != shown["ts"]:
            return None
        return shown, db

    shown, db = wait_for("the page showing a position at a stored bar", page_agrees_with_db)
    run = db["run"]
    assert shown["run_id"] == run.run_id
    assert amount(shown["cash"]) == pytest.approx(run.cash, abs=0.005)
    assert amount(shown["equity"]) == pytest.approx(db["equity"].equity, abs=0.005)
    assert amount(shown["drawdown"]) == pytest.approx(100 * db["equity"].drawdown, abs=0.005)
    market_value = sum(p.qty * p.last_price for p in db["positions"])
    assert db["equity"].equity == pytest.approx(run.cash + market_value)
    stored_positions = sorted(
        (p.symbol, p.qty, round(p.avg_price, 2), round(p.last_price, 2)) for p in db["positions"]
    )
    shown_positions = sorted(
        (symbol, int(qty), amount(avg), amount(last))
        for symbol, qty, avg, last in shown["positions"]
    )
    assert shown_positions == stored_positions

    page.on("dialog", lambda dialog: dialog.accept())  # the kill switch asks for confirmation
    page.fill("#token", token)
    page.click("#kill")
    sync_api.expect(page.locator("#control-msg")).to_contain_text("HALTED")
    sync_api.expect(page.locator("#state")).to_have_text("HALTED")
    halted = daemon.stored()
    assert halted is not None and halted["run"].risk_state == "HALTED"
    assert ("kill_switch", "HALTED") in halted["risk"]
    kill_bar = halted["run"].last_bar_ts

    def after_the_kill_bar() -> dict[str, Any] | None:
        db = daemon.stored()
        return db if db is not None and db["run"].last_bar_ts > kill_bar else None

    flat = wait_for("the bar after the kill", after_the_kill_bar, timeout=10)
    assert flat["positions"] == []
    assert flat["run"].risk_state == "HALTED"
    sync_api.expect(page.locator("#positions tbody tr.empty")).to_be_visible()
    assert token not in daemon.output()
    assert str(daemon.token_file) in daemon.output()
    assert errors == []
