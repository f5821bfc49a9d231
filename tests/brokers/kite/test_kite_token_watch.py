"""``AccessTokenWatch`` and the broker's side of the daily token: one report per dead token, a
new token from the secrets file renews the broker (reconciled), a new token Kite rejects too
is waited out again, and the pre-session check finds a dead token before the open."""

from __future__ import annotations

import asyncio

from brokers.kite.auth import ENV_ACCESS_TOKEN, stored_access_token, write_secrets_file
from brokers.kite.token_watch import AccessTokenWatch
from engine.bus import EventBus
from engine.events import BrokerEvent, RiskEvent, TradingState
from risk.monitor import BrokerTroubleGuard
from risk.state import TradingStateMachine
from tests.support.fake_kite.server import FAKE_ACCESS_TOKEN
from tests.support.kite_broker import COSTS


async def until(condition, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def watch_for(fake, tmp_path, token: str = FAKE_ACCESS_TOKEN) -> tuple[AccessTokenWatch, object]:
    secrets = tmp_path / "kite.env"
    write_secrets_file(secrets, {ENV_ACCESS_TOKEN: token})
    settings = fake.settings(secrets_file=secrets)
    credentials = fake.credentials(token)
    watch = AccessTokenWatch(
        credentials, lambda: stored_access_token(settings, credentials), poll_s=0.02
    )
    return watch, settings


async def test_a_watch_reports_each_dead_token_once_and_ignores_stale_reports(fake, tmp_path):
    watch, _ = watch_for(fake, tmp_path)
    heard: list[str] = []

    async def listener(reason: str) -> None:
        heard.append(reason)

    watch.on_expired.append(listener)
    await watch.expired("some-older-token", "late report about yesterday's token")
    assert heard == [] and not watch.dead
    await watch.expired(FAKE_ACCESS_TOKEN, "403")
    await watch.expired(FAKE_ACCESS_TOKEN, "403 again, from the other websocket")
    assert heard == ["403"] and watch.dead and watch.expiries == 1
    await watch.close()


async def test_broker_renews_on_a_new_token_and_waits_again_if_kite_rejects_it(fake, bus, tmp_path):
    from brokers.kite.broker import KiteBroker

    watch, settings = watch_for(fake, tmp_path)
    broker = KiteBroker(
        bus, settings, fake.credentials(), cost_model=COSTS, poll_interval_s=0.05,
        run_ticker=False, token_watch=watch,
    )  # fmt: skip
    seen: list[BrokerEvent] = []
    bus.subscribe(BrokerEvent, seen.append)
    await broker.start()
    fake.expire_token()
    assert await broker.check_token() is False  # the pre-session check meets the expiry
    assert broker.halted and [e.kind for e in seen if e.halts] == ["token_expired"]
    # a token written by mistake (Kite rejects it too): reported, and the watch keeps waiting
    write_secrets_file(settings.secrets_path, {ENV_ACCESS_TOKEN: "not-a-kite-token-at-all"})
    assert await until(lambda: watch.expiries == 2)
    assert broker.halted and watch.dead
    assert "token_renewed" not in [e.kind for e in seen]
    # the real login's token
    fake.valid_tokens.add("tomorrows-token-123")
    write_secrets_file(settings.secrets_path, {ENV_ACCESS_TOKEN: "tomorrows-token-123"})
    assert await until(lambda: "token_renewed" in [e.kind for e in seen])
    assert broker.halted is None and not watch.dead and watch.renewals == 2
    (renewed,) = [e for e in seen if e.kind == "token_renewed"]
    assert "Kite order book:" in renewed.message  # reconciled before it was announced
    assert await broker.check_token() is True
    await broker.stop()
    await watch.close()


async def test_a_renewed_token_lifts_only_the_halt_the_expiry_caused():
    bus = EventBus()
    risk: list[RiskEvent] = []

    async def publish(event: RiskEvent) -> None:
        risk.append(event)

    state = TradingStateMachine(publish, bus.next_seq)

    class Monitor:
        def __init__(self) -> None:
            self.state = state

        async def halt(self, ts_ns: int, gate: str, reason: str, flatten: bool) -> None:
            await state.tighten(TradingState.HALTED, ts_ns, gate, reason)

    guard = BrokerTroubleGuard(Monitor())  # type: ignore[arg-type]
    renewed = BrokerEvent(2, 2, "token_renewed", "new token", False)
    await guard.on_broker_event(BrokerEvent(1, 1, "token_expired", "403", True))
    assert state.state is TradingState.HALTED
    await guard.on_broker_event(renewed)
    assert state.state is TradingState.ACTIVE and state.gate == "broker_token_renewed"
    await state.tighten(TradingState.HALTED, 3, "max_drawdown", "drawdown 20%")
    assert guard.on_broker_event(renewed) is None  # not the token's halt: it stays
    reconciled = BrokerEvent(4, 4, "reconciled", "Kite order book: ...", False)
    assert guard.on_broker_event(reconciled) is None
    assert state.state is TradingState.HALTED
    # a run restarted while HALTED by the token (engine/restore.py restores the gate): the
    # start's successful reconciliation proves the token works and lifts that halt
    state.state, state.gate = TradingState.HALTED, "broker_token_expired"
    await guard.on_broker_event(reconciled)
    assert state.state is TradingState.ACTIVE
