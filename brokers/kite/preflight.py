"""``trader kite check``: what would stop live trading today, found before the session does.

A live session meets its problems at the worst moment — the expired token at 09:15, the symbol
Kite does not know when the first bar arrives, the stock that cannot be bought intraday at the
first entry. Each check here asks Kite the question the session would ask later, with the
user's own credentials, and says in words what blocks and how to clear it:

* **token** — today's access token is accepted (``/user/profile``); it expires every morning.
* **profile** — the account may trade NSE with product MIS and MARKET orders.
* **margins** — the equity segment is enabled and has money available.
* **instruments** — every symbol of the universe has an NSE instrument token.
* **MIS per symbol** — the instrument is an equity (``EQ``) of the NSE segment, not in a
  trade-for-trade or similar series that Kite lists with a suffix (``SBIN-BE``: no intraday),
  and Kite's order-margin calculator accepts a one-share MIS buy of it.

Only reads: no order is placed, nothing is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from brokers.kite.errors import KiteInputError, KiteTokenError
from brokers.kite.rest import Instrument, KiteRestClient

PRODUCT_MIS = "MIS"
#: NSE series Kite lists as ``SYMBOL-XX`` whose shares cannot be traded intraday (trade for
#: trade, block deals, SME, ...); an ordinary EQ-series symbol has no suffix.
NO_INTRADAY_SERIES = frozenset({"BE", "BZ", "BL", "BT", "SM", "ST", "IL", "GS", "GB"})

OK, WARN, BLOCK = "ok", "warn", "BLOCK"
#: a count whose failures are each reported as their own BLOCK line
NOTE = "note"


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``level`` is ok, warn (worth reading), BLOCK (live would fail) or
    note (a count summarising BLOCK lines of its own)."""

    check: str
    level: str
    detail: str


@dataclass
class PreflightReport:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, level: str, detail: str) -> None:
        self.findings.append(Finding(check, level, detail))

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.level == BLOCK]

    def lines(self) -> list[str]:
        return [f"{f.level:<5} {f.check}: {f.detail}" for f in self.findings]


def series_of(symbol: str) -> str | None:
    """The series suffix of a Kite NSE symbol that marks a no-intraday series, else None
    (``BAJAJ-AUTO`` is an EQ-series name with a hyphen, not a series)."""
    _, dash, suffix = symbol.rpartition("-")
    return suffix if dash and suffix in NO_INTRADAY_SERIES else None


async def run_preflight(
    rest: KiteRestClient,
    symbols: Sequence[str],
    *,
    exchange: str = "NSE",
    capital: float | None = None,
) -> PreflightReport:
    """Every check, in the order a session depends on them; a rejected token stops the rest
    (every later call would be refused for the same reason)."""
    report = PreflightReport()
    try:
        profile = await rest.get_json("/user/profile")
    except KiteTokenError as exc:
        report.add("token", BLOCK, f"{exc}")
        return report
    report.add("token", OK, f"accepted (user {profile.get('user_id', '?')})")
    _check_profile(report, profile, exchange)
    _check_margins(report, await rest.get_json("/user/margins"), capital)
    table = {i.tradingsymbol: i for i in await rest.instruments(exchange) if i.exchange == exchange}
    known = [s for s in symbols if s in table]
    for symbol in symbols:
        if symbol not in table:
            report.add(f"instrument {symbol}", BLOCK, f"not in Kite's {exchange} instruments list")
    report.add(
        "instruments", OK if len(known) == len(symbols) else NOTE,
        f"{len(known)} of {len(symbols)} symbols have an instrument token",
    )  # fmt: skip
    await _check_mis(report, rest, [table[s] for s in known], exchange)
    return report


def _check_profile(report: PreflightReport, profile: dict[str, Any], exchange: str) -> None:
    problems = []
    if exchange not in profile.get("exchanges", []):
        problems.append(f"exchange {exchange} is not enabled")
    if PRODUCT_MIS not in profile.get("products", []):
        problems.append("product MIS (intraday) is not enabled")
    if "MARKET" not in profile.get("order_types", []):
        problems.append("MARKET orders are not enabled")
    if problems:
        report.add("profile", BLOCK, "; ".join(problems) + " for this account")
    else:
        report.add("profile", OK, f"{exchange}, MIS and MARKET orders enabled")


def _check_margins(report: PreflightReport, margins: dict[str, Any], capital: float | None) -> None:
    equity = margins.get("equity") or {}
    if not equity.get("enabled"):
        report.add("margins", BLOCK, "the equity segment is not enabled")
        return
    net = float(equity.get("net") or 0.0)
    if net <= 0:
        report.add("margins", BLOCK, f"no equity margin available (net ₹{net:,.2f})")
    elif capital is not None and net < capital:
        report.add(
            "margins", WARN,
            f"equity margin ₹{net:,.2f} is below the run's capital ₹{capital:,.2f}: "
            "orders beyond the margin will be rejected by Kite's RMS",
        )  # fmt: skip
    else:
        report.add("margins", OK, f"equity margin available ₹{net:,.2f}")


def _margin_request(instrument: Instrument) -> dict[str, Any]:
    return {
        "exchange": instrument.exchange,
        "tradingsymbol": instrument.tradingsymbol,
        "transaction_type": "BUY",
        "variety": "regular",
        "product": PRODUCT_MIS,
        "order_type": "MARKET",
        "quantity": 1,
        "price": 0,
        "trigger_price": 0,
    }


async def _check_mis(
    report: PreflightReport, rest: KiteRestClient, instruments: list[Instrument], exchange: str
) -> None:
    """Static checks first (no request), then one margin request for the rest together; if
    Kite refuses the batch, one request per symbol finds which it refuses."""
    candidates = []
    for instrument in instruments:
        symbol = instrument.tradingsymbol
        series = series_of(symbol)
        if instrument.instrument_type != "EQ" or instrument.segment != exchange:
            report.add(
                f"MIS {symbol}", BLOCK,
                f"not an equity of the {exchange} segment "
                f"({instrument.instrument_type}, {instrument.segment})",
            )  # fmt: skip
        elif series is not None:
            report.add(f"MIS {symbol}", BLOCK, f"series {series} cannot be traded intraday (MIS)")
        else:
            candidates.append(instrument)
    if not candidates:
        return
    try:
        await rest.post_json("/margins/orders", [_margin_request(i) for i in candidates])
    except KiteInputError:
        refused = []
        for instrument in candidates:
            try:
                await rest.post_json("/margins/orders", [_margin_request(instrument)])
            except KiteInputError as exc:
                refused.append(instrument.tradingsymbol)
                report.add(f"MIS {instrument.tradingsymbol}", BLOCK, f"Kite refuses MIS: {exc}")
        allowed = len(candidates) - len(refused)
    else:
        allowed = len(candidates)
    report.add("MIS", OK if allowed == len(instruments) else NOTE,
               f"{allowed} of {len(instruments)} symbols accept intraday (MIS) orders")  # fmt: skip
