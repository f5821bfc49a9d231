"""Run reports in a real headless Chromium (Debian's, driven by playwright, launched as the
dashboard's test does): the page written by ``trader backtest --report`` and by ``trader report
RUN --data`` on real NSE bars — header filled, parameters shown, percentages formatted, axes
labelled with dates, one entry and one exit marker per stored trade, a model's calls against
realised labels, and not a single request leaving the file (it opens offline)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.cli import main
from engine.store.database import open_database
from engine.store.queries import load_run
from tests.support.browser import headless_chromium

# no --start-date: `trader report --data` must still find the bars the run had (its fingerprint)
ARGS = ["--interval", "15minute", "--strategy", "sma_cross", "--param", "fast=3",
        "--param", "slow=8", "--param", "qty=5", "--end-date", "2021-02-26",
        "--slippage-bps", "1"]  # fmt: skip
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PCT = re.compile(r"^-?[\d,]+\.\d{1,2}%$")
RATIO = re.compile(r"^-?[\d,]+\.\d{2}$")
INR = re.compile(r"^₹-?[\d,]+\.\d{2}$")
IST_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} IST → \d{4}-\d{2}-\d{2} \d{2}:\d{2} IST$")

READ_REPORT = """() => {
  const text = (el) => el ? el.textContent.trim() : null;
  const header = {};
  for (const row of document.querySelectorAll('#header tr[data-key]'))
    header[row.dataset.key] = text(row.querySelector('td'));
  const metrics = {};
  for (const row of document.querySelectorAll('#metrics tr[data-key]'))
    metrics[row.dataset.key] = text(row.querySelector('td'));
  const ticks = (id, cls) =>
    [...document.querySelectorAll(`#${id} text.${cls}`)].map((t) => t.textContent);
  const prices = [...document.querySelectorAll('div.price')].map((div) => ({
    symbol: div.dataset.symbol,
    entries: div.querySelectorAll('polygon.marker.entry').length,
    exits: div.querySelectorAll('polygon.marker.exit').length,
    xTicks: [...div.querySelectorAll('text.x-tick')].map((t) => t.textContent),
    drawn: div.querySelector('svg').getBoundingClientRect().width,
  }));
  return {
    header, metrics, prices,
    params: [...document.querySelectorAll('#header .param')].map((p) => p.textContent),
    equityX: ticks('equity', 'x-tick'), equityY: ticks('equity', 'y-tick'),
    drawdownX: ticks('drawdown', 'x-tick'), drawdownY: ticks('drawdown', 'y-tick'),
    equityPoints: document.querySelector('#equity polyline').points.numberOfItems,
    months: [...document.querySelectorAll('#monthly td.heat')].map((c) => [c.dataset.month,
             c.textContent, getComputedStyle(c).backgroundColor]),
    modelCalls: text(document.querySelector('#model-calls')),
    confusion: document.querySelectorAll('#confusion tr').length,
    scripts: document.querySelectorAll('script').length,
  };
}"""


def read_offline(browser: Any, path: Path) -> dict[str, Any]:
    """The report as Chromium shows it, with every request the page made: only the file
    itself may be fetched (no CDN, no font, no image from anywhere)."""
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        shown = page.evaluate(READ_REPORT)
    finally:
        page.close()
    assert requested == [path.as_uri()], requested
    return shown


def check_report(shown: dict[str, Any], run: dict[str, Any]) -> None:
    header = shown["header"]
    assert header["mode"] == "backtest" and header["run_id"] == run["run_id"]
    assert header["code"] == run["code_version"] and header["code"] not in ("", "-")
    assert header["data"].startswith(run["data_fingerprint"]) and run["data_fingerprint"]
    assert header["capital"] == "₹1,000,000.00" and header["slippage"] == "1 bps"
    assert header["interval"] == "15minute" and header["costs"].startswith("zerodha:")
    assert IST_PERIOD.match(header["period"]), header["period"]
    assert header["period"].startswith("2021-01-01 09:15 IST")
    params = run["config"]["params"]
    assert sorted(shown["params"]) == sorted(f"{k}={v}" for k, v in params.items())
    for name in ("total_return", "max_drawdown", "win_rate", "exposure"):
        assert PCT.match(shown["metrics"][name]), (name, shown["metrics"][name])
    assert RATIO.match(shown["metrics"]["sharpe"]) and INR.match(shown["metrics"]["total_pnl"])
    assert shown["metrics"]["trade_count"] == f"{len(run['trades']):,}"
    # real time axes: IST dates in order, rupees and percentages on the value axes
    for axis in (shown["equityX"], shown["drawdownX"]):
        assert len(axis) >= 4 and all(DATE.match(t) for t in axis) and axis == sorted(axis)
        assert axis[0] == "2021-01-01" and axis[-1] == "2021-02-26"
    assert all(t.startswith("₹") for t in shown["equityY"]) and len(shown["equityY"]) >= 3
    assert all(t.endswith("%") for t in shown["drawdownY"]) and "0.0%" in shown["drawdownY"]
    assert shown["equityPoints"] == run["bars_processed"]
    # monthly returns: a heat table of January and February, coloured by sign
    assert [m[0] for m in shown["months"]] == ["2021-01", "2021-02"]
    assert all(PCT.match(m[1]) for m in shown["months"])
    for _, value, colour in shown["months"]:
        red, green = (int(c) for c in re.findall(r"\d+", colour)[:2])
        assert (green > red) == (not value.startswith("-")), (value, colour)
    # one ▲ and one ▼ per stored trade, on the price chart of its symbol, dated axes
    per_symbol = {p["symbol"]: p for p in shown["prices"]}
    counts: dict[str, int] = {}
    for trade in run["trades"]:
        counts[trade["symbol"]] = counts.get(trade["symbol"], 0) + 1
    assert counts and {s: (n, n) for s, n in counts.items()} == {
        s: (p["entries"], p["exits"]) for s, p in per_symbol.items()
    }
    assert all(
        all(DATE.match(t) for t in p["xTicks"]) and p["drawn"] > 300 for p in per_symbol.values()
    )
    assert shown["scripts"] == 0


def test_backtest_report_and_stored_run_report_in_chromium(tmp_path, nifty_path, capsys):
    db, written = tmp_path / "r.db", tmp_path / "backtest.html"
    argv = ["backtest", "--data", str(nifty_path), *ARGS, "--no-progress", "--db", str(db)]
    assert main([*argv, "--report", str(written)]) == 0
    run_id = re.search(r"run_id: (\w+)", capsys.readouterr().out).group(1)  # type: ignore[union-attr]
    run = load_run(open_database(str(db)), run_id)
    assert len(run["trades"]) > 20
    stored = tmp_path / "stored.html"
    assert main(["report", run_id, "--out", str(stored), "--db", str(db),
                 "--data", str(nifty_path)]) == 0  # fmt: skip
    with headless_chromium() as chromium:
        from_backtest, from_store = (read_offline(chromium, p) for p in (written, stored))
    for shown in (from_backtest, from_store):
        check_report(shown, run)
    # the same header whichever command wrote it (the stored run adds when it was created)
    same = {k: v for k, v in from_store["header"].items() if k not in ("created", "feed", "params")}
    assert same == {k: v for k, v in from_backtest["header"].items() if k in same}
    assert "not the run's data" not in from_store["header"]["data"]
    assert from_store["header"]["feed"] == "replay" and "UTC" in from_store["header"]["created"]
    assert from_backtest["metrics"] == from_store["metrics"]
