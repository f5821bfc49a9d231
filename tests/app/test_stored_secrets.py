"""No credential reaches the database or the log, whatever text a failure carries: a Kite error
body echoing ``api_key:access_token`` (the fake Kite made to do so), or any exception quoting it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterable

import pytest
import structlog
from sqlalchemy import Engine, select

from app.runners.paper import trading_session
from brokers.costs import make_cost_model
from brokers.kite.auth import KiteCredentials
from brokers.kite.broker import KiteBroker
from config.settings import load_settings
from engine.bus import EventBus
from engine.data.loader import LoadedBars
from engine.data.replay import ReplayFeed
from engine.data.synthetic import SyntheticMarket
from engine.events import BarSlice
from engine.log import configure_logging, recent_log_lines
from engine.store.database import open_database
from engine.store.schema import Base, RiskEventRow, RunRow
from engine.universe import Universe
from strategies.sma_cross import SmaCross, SmaCrossParams
from tests.support.fake_kite.server import FakeKite


def fresh_credentials() -> KiteCredentials:
    """Values no other test uses; constructing them registers them, as loading does."""
    key, secret, token = (f"{name}-{secrets.token_hex(6)}" for name in ("key", "sec", "tok"))
    return KiteCredentials(key, secret, token)


def values(creds: KiteCredentials) -> list[str]:
    return [v for v in (creds.api_key, creds.api_secret, creds.access_token) if v]


def every_stored_text(db: Engine) -> str:
    """Every row of every table, as text: wherever a secret was stored, it shows here."""
    with db.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in Base.metadata.sorted_tables
            for row in conn.execute(select(table)).all()
        )  # fmt: skip


@pytest.fixture(autouse=True)
def logging_to_stderr() -> Iterable[None]:
    configure_logging("live", json_lines=True)
    yield
    structlog.reset_defaults()


async def test_a_kite_broker_meeting_an_echoing_403_stores_and_logs_no_credential(
    tmp_path, capsys
) -> None:
    creds = fresh_credentials()
    db = open_database(str(tmp_path / "live.db"))
    settings = load_settings("live", interval="5minute")
    bars = SyntheticMarket(symbols=2, days=1).bars("5minute")
    async with FakeKite() as fake:
        fake.api_key = creds.api_key
        fake.valid_tokens = set()  # expired: every call is answered 403, quoting the header
        fake.echo_credentials()

        def broker(bus: EventBus, run_id: str) -> KiteBroker:
            return KiteBroker(
                bus, fake.settings(), creds, cost_model=make_cost_model(settings.costs),
                tag_namespace=run_id, run_ticker=False,
            )  # fmt: skip

        session = trading_session(
            bars, SmaCross(SmaCrossParams(5, 20, 1)), settings, db, broker_factory=broker
        )
        await asyncio.wait_for(session.run(), 30)
    with db.connect() as conn:
        reasons = conn.execute(select(RiskEventRow.gate, RiskEventRow.reason)).all()
    halts = [reason for gate, reason in reasons if gate == "broker_token_expired"]
    assert halts and "Kite rejected the access token" in halts[0]
    assert "received: ***:***" in halts[0]  # Kite's text is kept, the credentials are not
    stored = every_stored_text(db)
    logged = capsys.readouterr().err + "".join(recent_log_lines())
    assert "broker_token_expired" in stored and "session.start" in logged
    for value in values(creds):
        assert value not in stored and value not in logged


class QuotingFeed:
    """A bar source whose connection fails after one bar with an error quoting the
    credentials (as a library's error may quote a request) — not a ``KiteError``, so nothing
    scrubbed it on the way in: the sinks must."""

    finite = True
    paced = True
    on_stale: Callable[..., object] | None = None

    def __init__(self, bars: LoadedBars, failure: str) -> None:
        self.bars = bars
        self.failure = failure
        self.fingerprint = bars.fingerprint
        self.interval_minutes = bars.interval_minutes
        self.quality = bars.quality.as_dict()

    async def batches(
        self, universe: Universe, next_seq: Callable[[], int], stop: asyncio.Event
    ) -> AsyncIterator[tuple[BarSlice]]:
        for bars in ReplayFeed(self.bars, universe).slices(next_seq):
            yield (bars,)
            raise ConnectionError(self.failure)


async def test_a_failed_run_stores_its_error_without_the_credentials(tmp_path, capsys) -> None:
    creds = fresh_credentials()
    db = open_database(str(tmp_path / "failed.db"))
    failure = f"ticker: 403 for {creds.api_key}:{creds.access_token} ({creds.api_secret})"
    source = QuotingFeed(SyntheticMarket(symbols=2, days=1).bars("5minute"), failure)
    strategy = SmaCross(SmaCrossParams(5, 20, 1))
    session = trading_session(source, strategy, load_settings("paper"), db)
    with pytest.raises(ConnectionError):
        await session.run()
    with db.connect() as conn:
        run = conn.execute(select(RunRow.status, RunRow.error)).one()
    assert run.status == "failed" and run.error == "ticker: 403 for ***:*** (***)"
    logged = capsys.readouterr().err + "".join(recent_log_lines())
    assert "session.failed" in logged
    for value in values(creds):
        assert value not in every_stored_text(db) and value not in logged
